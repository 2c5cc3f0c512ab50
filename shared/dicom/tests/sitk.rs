//! Cross-check against SimpleITK, the reference reader:
//! scripts/dicom_crosscheck.py writes series with pydicom, reads them back
//! with SimpleITK's ImageSeriesReader and dumps voxels and geometry;
//! `find_series` + `read_series` must see the same.

use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_series::{find_series, read_series, read_series_dir};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    dir: String,
    series_uid: String,
    /// Transfer syntax UID of the written files.
    ts: String,
    /// Largest voxel difference allowed (non-zero only for lossy JPEG).
    tolerance: i32,
    size: Vec<usize>,
    voxels: String,
    origin_bits: Vec<u64>,
    spacing_bits: Vec<u64>,
    direction_bits: Vec<u64>,
}

/// Geometry travels as f64 bit patterns: serde_json's default float parsing
/// is not correctly rounded.
fn floats(bits: &[u64]) -> Vec<f64> {
    bits.iter().map(|&b| f64::from_bits(b)).collect()
}

fn python() -> PathBuf {
    let path = std::env::var_os("LUNA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            Path::new(&home).join(".cache/luna-toolkit/venv/bin/python")
        });
    assert!(
        path.exists(),
        "Python with SimpleITK and pydicom not found at {} — run `make setup` (scripts/setup.sh) or set LUNA_PYTHON",
        path.display()
    );
    path
}

fn write_cases(dir: &Path) -> Vec<Case> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dicom_crosscheck.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir)
        .output()
        .expect("cannot run the Python cross-check script");
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    serde_json::from_slice(&manifest).unwrap()
}

fn assert_close(name: &str, what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: {what} length");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-4,
            "{name}: {what} {got:?}, SimpleITK {want:?}"
        );
    }
}

/// The transfer syntaxes the README promises, each cross-checked.
const TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.1",    // explicit VR little endian
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
    "1.2.840.10008.1.2.5",    // RLE lossless
    "1.2.840.10008.1.2.4.50", // JPEG baseline (8-bit)
    "1.2.840.10008.1.2.4.70", // JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
];

#[test]
fn read_series_matches_simpleitk() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write_cases(dir.path());
    assert!(
        cases.len() >= 12,
        "the script wrote only {} series",
        cases.len()
    );
    for case in &cases {
        let name = &case.dir;
        let found = find_series(dir.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.len(), 1, "{name}: series found {found:?}");
        assert_eq!(found[0].series_uid, case.series_uid, "{name}: series UID");
        assert_eq!(found[0].files.len(), case.size[2], "{name}: files");
        let vol = read_series(&found[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            vol.shape,
            [case.size[2], case.size[1], case.size[0]],
            "{name}: shape"
        );
        let g = &vol.geometry;
        assert_close(name, "origin", &g.origin, &floats(&case.origin_bits));
        assert_close(name, "spacing", &g.spacing, &floats(&case.spacing_bits));
        let direction: Vec<f64> = g.direction.iter().flatten().copied().collect();
        assert_close(name, "direction", &direction, &floats(&case.direction_bits));
        let expected: Vec<i16> = std::fs::read(dir.path().join(&case.voxels))
            .unwrap()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let differing = vol
            .voxels
            .iter()
            .zip(&expected)
            .filter(|(&a, &b)| (i32::from(a) - i32::from(b)).abs() > case.tolerance)
            .count();
        let worst = vol
            .voxels
            .iter()
            .zip(&expected)
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .max();
        assert!(
            vol.voxels.len() == expected.len() && differing == 0,
            "{name}: {differing} of {} voxels differ from SimpleITK's by more than {} (at most {worst:?})",
            expected.len(),
            case.tolerance
        );
        assert_eq!(
            read_series_dir(dir.path().join(name)).unwrap(),
            vol,
            "{name}: read_series_dir"
        );
    }
    for ts in TRANSFER_SYNTAXES {
        assert!(cases.iter().any(|c| c.ts == *ts), "no case written in {ts}");
    }
    // The whole tree: every series once, and a folder of many is refused.
    let all = find_series(dir.path()).unwrap();
    assert_eq!(all.len(), cases.len());
    let err = read_series_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{} series found", cases.len())),
        "{err}"
    );
}
