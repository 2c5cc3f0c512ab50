//! A minimal DICOM writer for the tests: explicit VR little endian CT
//! slices assembled byte by byte, so that refusals and fuzzing need neither
//! Python nor a DICOM writing library, and any attribute can be made wrong.

use std::path::Path;

/// One CT slice's attributes; `Slice::default()` is a valid 4×3 axial slice.
#[derive(Clone)]
pub struct Slice {
    pub sop_class: String,
    pub series_uid: String,
    pub modality: String,
    pub rows: u16,
    pub columns: u16,
    pub orientation: [f64; 6],
    pub position: [f64; 3],
    pub pixel_spacing: [f64; 2],
    pub frames: Option<u32>,
    pub slope: f64,
    pub intercept: f64,
    /// Stored int16 values; `rows × columns` ramp values when None.
    pub pixels: Option<Vec<i16>>,
}

impl Default for Slice {
    fn default() -> Self {
        Slice {
            sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
            series_uid: "1.2.3.4.5".into(),
            modality: "CT".into(),
            rows: 4,
            columns: 3,
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            position: [-10.0, 20.0, -100.0],
            pixel_spacing: [0.75, 0.5],
            frames: None,
            slope: 1.0,
            intercept: -1024.0,
            pixels: None,
        }
    }
}

/// `count` slices 2 mm apart along z.
pub fn axial_series(count: usize) -> Vec<Slice> {
    (0..count)
        .map(|k| {
            let mut s = Slice::default();
            s.position[2] += 2.0 * k as f64;
            s
        })
        .collect()
}

/// Writes each slice as `dir/slice<k>.dcm`.
pub fn write_series(dir: &Path, slices: &[Slice]) {
    for (k, s) in slices.iter().enumerate() {
        std::fs::write(dir.join(format!("slice{k}.dcm")), s.encode(k)).unwrap();
    }
}

fn ds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v}"))
        .collect::<Vec<_>>()
        .join("\\")
}

impl Slice {
    /// The file's bytes; `k` makes the SOP instance UID unique.
    pub fn encode(&self, k: usize) -> Vec<u8> {
        let instance = format!("1.2.3.4.6.{k}");
        let pixels: Vec<i16> = self.pixels.clone().unwrap_or_else(|| {
            let n = usize::from(self.rows) * usize::from(self.columns);
            (0..n as i16).map(|v| v * 37 - 200).collect()
        });
        let pixel_bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut body = Vec::new();
        put(
            &mut body,
            (0x0008, 0x0016),
            b"UI",
            self.sop_class.as_bytes(),
        );
        put(&mut body, (0x0008, 0x0018), b"UI", instance.as_bytes());
        put(&mut body, (0x0008, 0x0060), b"CS", self.modality.as_bytes());
        put(
            &mut body,
            (0x0020, 0x000E),
            b"UI",
            self.series_uid.as_bytes(),
        );
        put(
            &mut body,
            (0x0020, 0x0032),
            b"DS",
            ds(&self.position).as_bytes(),
        );
        put(
            &mut body,
            (0x0020, 0x0037),
            b"DS",
            ds(&self.orientation).as_bytes(),
        );
        put(&mut body, (0x0028, 0x0002), b"US", &1u16.to_le_bytes());
        put(&mut body, (0x0028, 0x0004), b"CS", b"MONOCHROME2");
        if let Some(frames) = self.frames {
            put(
                &mut body,
                (0x0028, 0x0008),
                b"IS",
                frames.to_string().as_bytes(),
            );
        }
        put(&mut body, (0x0028, 0x0010), b"US", &self.rows.to_le_bytes());
        put(
            &mut body,
            (0x0028, 0x0011),
            b"US",
            &self.columns.to_le_bytes(),
        );
        put(
            &mut body,
            (0x0028, 0x0030),
            b"DS",
            ds(&self.pixel_spacing).as_bytes(),
        );
        for (element, value) in [(0x0100, 16u16), (0x0101, 16), (0x0102, 15), (0x0103, 1)] {
            put(&mut body, (0x0028, element), b"US", &value.to_le_bytes());
        }
        put(
            &mut body,
            (0x0028, 0x1052),
            b"DS",
            ds(&[self.intercept]).as_bytes(),
        );
        put(
            &mut body,
            (0x0028, 0x1053),
            b"DS",
            ds(&[self.slope]).as_bytes(),
        );
        put(&mut body, (0x7FE0, 0x0010), b"OW", &pixel_bytes);
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        file.extend(meta_group(&self.sop_class, &instance));
        file.extend(body);
        file
    }
}

fn meta_group(sop_class: &str, instance: &str) -> Vec<u8> {
    let mut meta = Vec::new();
    put(&mut meta, (0x0002, 0x0001), b"OB", &[0, 1]);
    put(&mut meta, (0x0002, 0x0002), b"UI", sop_class.as_bytes());
    put(&mut meta, (0x0002, 0x0003), b"UI", instance.as_bytes());
    put(&mut meta, (0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1");
    put(&mut meta, (0x0002, 0x0012), b"UI", b"1.2.3.4.99");
    let mut group = Vec::new();
    put(
        &mut group,
        (0x0002, 0x0000),
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    group.extend(meta);
    group
}

/// One explicit VR little endian element, its value padded to even length
/// (UIs with NUL, text with a space).
fn put(out: &mut Vec<u8>, tag: (u16, u16), vr: &[u8; 2], value: &[u8]) {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if vr == b"UI" { 0 } else { b' ' });
    }
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend(value);
}
