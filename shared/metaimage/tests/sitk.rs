//! Cross-check against SimpleITK, the reference reader:
//! scripts/sitk_crosscheck.py writes images (SimpleITK and hand-written
//! corners), reads them back with SimpleITK and dumps voxels and geometry;
//! `read_image` must see exactly the same.

use std::path::{Path, PathBuf};
use std::process::Command;

use metaimage::{read_image, read_volume, VoxelData};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    file: String,
    voxels: String,
    dtype: String,
    size: Vec<usize>,
    components: usize,
    origin_bits: Vec<u64>,
    spacing_bits: Vec<u64>,
    direction_bits: Vec<u64>,
}

/// Geometry travels as f64 bit patterns: serde_json's default float parsing
/// is not correctly rounded, so decimal text could be off by an ULP.
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
        "Python with SimpleITK not found at {} — run `make setup` (scripts/setup.sh) or set LUNA_PYTHON",
        path.display()
    );
    path
}

fn numpy_dtype(data: &VoxelData) -> &'static str {
    match data {
        VoxelData::U8(_) => "uint8",
        VoxelData::I8(_) => "int8",
        VoxelData::U16(_) => "uint16",
        VoxelData::I16(_) => "int16",
        VoxelData::U32(_) => "uint32",
        VoxelData::I32(_) => "int32",
        VoxelData::U64(_) => "uint64",
        VoxelData::I64(_) => "int64",
        VoxelData::F32(_) => "float32",
        VoxelData::F64(_) => "float64",
        other => panic!("no numpy dtype for {:?}", other.element_type()),
    }
}

#[test]
fn read_image_matches_simpleitk_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sitk_crosscheck.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("cannot run the Python cross-check script");
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read(dir.path().join("manifest.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_slice(&manifest).unwrap();
    assert!(
        cases.len() >= 17,
        "the script wrote only {} images",
        cases.len()
    );

    let mut saw_rotated = false;
    for case in &cases {
        let path = dir.path().join(&case.file);
        let img = read_image(&path).unwrap_or_else(|e| panic!("{e}"));
        let name = &case.file;
        let (origin, spacing, direction) = (
            floats(&case.origin_bits),
            floats(&case.spacing_bits),
            floats(&case.direction_bits),
        );
        assert_eq!(img.dims, case.size, "{name}: dims");
        assert_eq!(img.channels, case.components, "{name}: channels");
        assert_eq!(img.origin, origin, "{name}: origin");
        assert_eq!(img.spacing, spacing, "{name}: spacing");
        assert_eq!(img.direction, direction, "{name}: direction");
        assert_eq!(numpy_dtype(&img.data), case.dtype, "{name}: element type");
        let expected = std::fs::read(dir.path().join(&case.voxels)).unwrap();
        assert!(
            img.data.to_le_bytes() == expected,
            "{name}: voxels differ from SimpleITK's"
        );

        let n = case.size.len();
        let symmetric =
            (0..n).all(|r| (0..n).all(|c| direction[r * n + c] == direction[c * n + r]));
        saw_rotated |= !symmetric;

        if n == 3 && case.components == 1 {
            let vol = read_volume(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                vol.shape,
                [case.size[2], case.size[1], case.size[0]],
                "{name}: volume shape"
            );
            let want_direction: Vec<f64> =
                vol.geometry.direction.iter().flatten().copied().collect();
            assert_eq!(want_direction, direction, "{name}: volume direction");
            assert_eq!(
                vol.geometry.origin.to_vec(),
                origin,
                "{name}: volume origin"
            );
            assert_eq!(
                vol.geometry.spacing.to_vec(),
                spacing,
                "{name}: volume spacing"
            );
            // numpy's rounding, then int16's range (`as` saturates).
            let rounded: Vec<i16> = img
                .data
                .to_f64_vec()
                .iter()
                .map(|&x| x.round_ties_even() as i16)
                .collect();
            assert!(
                vol.voxels == rounded,
                "{name}: read_volume voxels differ from rounded SimpleITK voxels"
            );
        }
    }
    assert!(saw_rotated, "no case exercised a non-symmetric direction");
}
