//! Lists the series under a folder and reads each one:
//! `cargo run -p dicom-series --example dicom_info -- DIR`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os().nth(1).ok_or("usage: dicom_info DIR")?;
    for series in dicom_series::find_series(&dir)? {
        let start = Instant::now();
        match dicom_series::read_series(&series) {
            Ok(v) => println!(
                "{}: {} files, shape {:?}, origin {:?}, spacing {:?}, direction {:?} ({:.2} s)",
                series.series_uid,
                series.files.len(),
                v.shape,
                v.geometry.origin,
                v.geometry.spacing,
                v.geometry.direction,
                start.elapsed().as_secs_f64()
            ),
            Err(e) => println!("{e}"),
        }
    }
    Ok(())
}
