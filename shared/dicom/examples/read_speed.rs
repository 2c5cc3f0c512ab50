//! How long a DICOM series takes to read against the same volume as a
//! MetaImage file (issue 25's bound: within 2×), rounds interleaved,
//! medians: `cargo run --release -p dicom-series --example read_speed --
//! SERIES_DIR SCAN.mhd [ROUNDS]`. The series side includes finding its
//! files (`find_one_series`), as a tool given the folder does.

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<_> = std::env::args_os().collect();
    let [_, dir, mhd, ..] = &args[..] else {
        return Err("usage: read_speed SERIES_DIR SCAN.mhd [ROUNDS]".into());
    };
    let rounds: usize = args
        .get(3)
        .and_then(|r| r.to_str()?.parse().ok())
        .unwrap_or(5);
    let (mut dicom, mut meta) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let series = dicom_series::find_one_series(dir)?;
        let a = dicom_series::read_series(&series)?;
        dicom.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b = metaimage::read_volume(mhd)?;
        meta.push(t.elapsed().as_secs_f64());
        if a.voxels != b.voxels {
            return Err("the series and the .mhd hold different voxels".into());
        }
    }
    let (d, m) = (median(dicom), median(meta));
    println!(
        "shape {:?}, {rounds} rounds: DICOM series {d:.3} s, MetaImage {m:.3} s, ratio {:.2}",
        metaimage::read_volume(mhd)?.shape,
        d / m
    );
    Ok(())
}
