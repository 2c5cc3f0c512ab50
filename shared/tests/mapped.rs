//! `open_scan`: mapped scans crop exactly like decoded ones, every other
//! layout falls back to decoding, and bad files fail as `read_volume` does.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use shared::crop::{crop_candidate, CropError, CROP_SHAPE, CROP_VOXELS};
use shared::geometry::{Geometry, Irc};
use shared::hu::{HU_MAX, HU_MIN};
use shared::metaimage::{open_scan, open_scan_reusing, read_volume, write_volume};
use shared::volume::{Scan, Volume, VoxelSource};

const SHAPE: [usize; 3] = [40, 56, 60];

/// Values spread over the whole int16 range, so most lie outside the HU
/// window, and distinct enough that a misplaced row shows.
fn wide_voxels(shape: [usize; 3]) -> Vec<i16> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|k| (k.wrapping_mul(2_654_435_761) >> 7) as u16 as i16)
        .collect()
}

fn dims_xyz(shape: [usize; 3]) -> [usize; 3] {
    [shape[2], shape[1], shape[0]]
}

/// `voxels` of `shape` written as a LUNA-layout `.mhd` + `.raw` pair.
fn write_pair(mhd: &Path, shape: [usize; 3], voxels: Vec<i16>) {
    let volume = Volume::new(shape, voxels, Geometry::default()).unwrap();
    write_volume(mhd, &volume).unwrap();
}

fn le_bytes(voxels: &[i16]) -> Vec<u8> {
    voxels.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A MetaImage header for `SHAPE` with `extra` lines, ending in `data_file`.
fn header_text(extra: &str, data_file: &str) -> String {
    let [x, y, z] = dims_xyz(SHAPE);
    format!(
        "ObjectType = Image\nNDims = 3\nDimSize = {x} {y} {z}\nElementSpacing = 0.7 0.7 2.5\n\
         Offset = -100 -120 -300\nElementType = MET_SHORT\n{extra}ElementDataFile = {data_file}\n"
    )
}

/// Centres at and next to every face, and in the middle, along each axis:
/// corner, edge and face crops are all shifted inward.
fn centres(shape: [usize; 3]) -> Vec<Irc> {
    let along = |n: usize| [0, 1, n as i64 / 2, n as i64 - 2, n as i64 - 1];
    let mut out = Vec::new();
    for i in along(shape[0]) {
        for r in along(shape[1]) {
            for c in along(shape[2]) {
                out.push([i, r, c]);
            }
        }
    }
    out
}

fn crop_all(scan: &impl VoxelSource, centres: &[Irc]) -> Vec<Vec<i16>> {
    centres
        .iter()
        .map(|&c| {
            let mut out = vec![0i16; CROP_VOXELS];
            crop_candidate(scan, c, &mut out).unwrap();
            out
        })
        .collect()
}

fn assert_same_crops_as_read_volume(path: &Path) -> Scan {
    let scan = open_scan(path).unwrap();
    let volume = read_volume(path).unwrap();
    assert_eq!(scan.shape(), volume.shape);
    assert_eq!(scan.geometry(), &volume.geometry);
    let at = centres(volume.shape);
    assert!(
        crop_all(&scan, &at) == crop_all(&volume, &at),
        "{}: crops differ",
        path.display()
    );
    scan
}

fn is_mapped(scan: &Scan) -> bool {
    matches!(scan, Scan::Mapped(_))
}

#[test]
fn mapped_crops_are_clipped_to_the_hu_window() {
    let dir = tempfile::tempdir().unwrap();
    let mhd = dir.path().join("wide.mhd");
    let voxels = wide_voxels(SHAPE);
    assert!(voxels.iter().any(|&v| v < HU_MIN) && voxels.iter().any(|&v| v > HU_MAX));
    write_pair(&mhd, SHAPE, voxels.clone());
    let scan = assert_same_crops_as_read_volume(&mhd);
    assert!(is_mapped(&scan));
    let Scan::Mapped(mapped) = &scan else {
        unreachable!()
    };
    assert_eq!(mapped.voxels(), Some(&voxels[..]), "in place, unclipped");
    assert_eq!(read_volume(&mhd).unwrap().voxels, voxels, "read unclipped");
    // Independently of read_volume: the corner crop is the clipped source.
    let mut out = vec![0i16; CROP_VOXELS];
    assert_eq!(crop_candidate(&scan, [0, 0, 0], &mut out), Ok([0, 0, 0]));
    let [_, rows, cols] = SHAPE;
    for i in 0..CROP_SHAPE[0] {
        for r in 0..CROP_SHAPE[1] {
            for c in 0..CROP_SHAPE[2] {
                let want = voxels[(i * rows + r) * cols + c].clamp(HU_MIN, HU_MAX);
                assert_eq!(out[(i * CROP_SHAPE[1] + r) * CROP_SHAPE[2] + c], want);
            }
        }
    }
}

#[test]
fn local_data_at_an_odd_offset_is_mapped_and_read_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let voxels = wide_voxels(SHAPE);
    // Headers one byte apart in length: the data starts at an even and at
    // an odd offset, whatever the base header's length.
    let mut parities = Vec::new();
    for pad in ["X = 1\n", "X = 12\n"] {
        let mha = dir.path().join(format!("local{}.mha", pad.len()));
        let mut bytes = header_text(pad, "LOCAL").into_bytes();
        parities.push(bytes.len() % 2);
        bytes.extend(le_bytes(&voxels));
        fs::write(&mha, bytes).unwrap();
        let scan = assert_same_crops_as_read_volume(&mha);
        let Scan::Mapped(mapped) = &scan else {
            panic!("{} was not mapped", mha.display())
        };
        // An i16 view needs an even address; at an odd one there is none.
        let in_place = parities.last() == Some(&0);
        assert_eq!(mapped.voxels().is_some(), in_place, "{}", mha.display());
        if let Some(view) = mapped.voxels() {
            assert_eq!(view, &voxels[..]);
        }
    }
    parities.sort();
    assert_eq!(parities, [0, 1]);
    // HeaderSize: skip a prefix of the data file.
    let raw = dir.path().join("skip.raw");
    let mut bytes = vec![7u8; 333];
    bytes.extend(le_bytes(&voxels));
    fs::write(&raw, bytes).unwrap();
    let mhd = dir.path().join("skip.mhd");
    fs::write(&mhd, header_text("HeaderSize = 333\n", "skip.raw")).unwrap();
    assert!(is_mapped(&assert_same_crops_as_read_volume(&mhd)));
}

#[test]
fn other_layouts_are_decoded_with_the_same_crops() {
    let dir = tempfile::tempdir().unwrap();
    let voxels = wide_voxels(SHAPE);
    let put = |name: &str, header: String, data: &[(&str, Vec<u8>)]| -> PathBuf {
        for (file, bytes) in data {
            fs::write(dir.path().join(file), bytes).unwrap();
        }
        let mhd = dir.path().join(name);
        fs::write(&mhd, header).unwrap();
        mhd
    };
    let big_endian: Vec<u8> = voxels.iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(&le_bytes(&voxels)).unwrap();
    let zlib = zlib.finish().unwrap();
    let per_slice = 2 * SHAPE[1] * SHAPE[2];
    let slices: Vec<(String, Vec<u8>)> = le_bytes(&voxels)
        .chunks(per_slice)
        .enumerate()
        .map(|(k, b)| (format!("slice{k:03}.raw"), b.to_vec()))
        .collect();
    let slice_refs: Vec<(&str, Vec<u8>)> = slices
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let floats: Vec<u8> = voxels
        .iter()
        .flat_map(|&v| f32::from(v).to_le_bytes())
        .collect();
    let cases = [
        put(
            "be.mhd",
            header_text("BinaryDataByteOrderMSB = True\n", "be.raw"),
            &[("be.raw", big_endian)],
        ),
        put(
            "z.mhd",
            header_text("CompressedData = True\n", "z.zraw"),
            &[("z.zraw", zlib)],
        ),
        put(
            "pattern.mhd",
            header_text("", &format!("slice%03d.raw 0 {} 1", SHAPE[0] - 1)),
            &slice_refs,
        ),
        put(
            "float.mhd",
            header_text("", "float.raw").replace("MET_SHORT", "MET_FLOAT"),
            &[("float.raw", floats)],
        ),
    ];
    for mhd in cases {
        let scan = assert_same_crops_as_read_volume(&mhd);
        assert!(!is_mapped(&scan), "{} must be decoded", mhd.display());
    }
}

#[test]
fn a_recycled_buffer_is_used_only_when_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let voxels = wide_voxels(SHAPE);
    let be: Vec<u8> = voxels.iter().flat_map(|v| v.to_be_bytes()).collect();
    fs::write(dir.path().join("be.raw"), be).unwrap();
    let mhd = dir.path().join("be.mhd");
    fs::write(
        &mhd,
        header_text("BinaryDataByteOrderMSB = True\n", "be.raw"),
    )
    .unwrap();
    let fresh = read_volume(&mhd).unwrap();
    let stale = vec![i16::MAX; fresh.voxels.len() + 17];
    let scan = open_scan_reusing(&mhd, stale).unwrap();
    let Scan::Owned(volume) = scan else {
        panic!("big-endian data must be decoded");
    };
    assert_eq!(volume, fresh);
    assert!(
        volume.voxels.capacity() >= fresh.voxels.len() + 17,
        "buffer reused"
    );
    assert_eq!(
        Scan::Owned(volume).into_buffer().map(|b| b.len()),
        Some(fresh.voxels.len())
    );

    let le = dir.path().join("le.mhd");
    write_pair(&le, SHAPE, voxels);
    let mapped = open_scan_reusing(&le, vec![0; 10]).unwrap();
    assert!(is_mapped(&mapped));
    assert_eq!(mapped.into_buffer(), None);
}

#[test]
fn bad_files_fail_exactly_as_read_volume_does() {
    let dir = tempfile::tempdir().unwrap();
    let voxels = wide_voxels(SHAPE);
    let mhd = dir.path().join("scan.mhd");
    write_pair(&mhd, SHAPE, voxels.clone());
    let raw = mhd.with_extension("raw");
    let full = le_bytes(&voxels);
    let same_error = |what: &str| {
        let mapped = open_scan(&mhd)
            .expect_err("open_scan must fail")
            .to_string();
        let decoded = read_volume(&mhd)
            .expect_err("read_volume must fail")
            .to_string();
        assert_eq!(mapped, decoded);
        assert!(mapped.contains(what), "{mapped}");
        assert!(mapped.contains("scan.raw"), "names the data file: {mapped}");
    };
    fs::write(&raw, &full[..full.len() - 1]).unwrap();
    same_error("truncated");
    fs::write(&raw, [&full[..], &[0u8; 2]].concat()).unwrap();
    same_error("too long");
    fs::remove_file(&raw).unwrap();
    same_error("does not exist");

    let flat = dir.path().join("flat.mhd");
    fs::write(
        &flat,
        "NDims = 2\nDimSize = 4 4\nElementType = MET_SHORT\nElementDataFile = flat.raw\n",
    )
    .unwrap();
    fs::write(dir.path().join("flat.raw"), [0u8; 32]).unwrap();
    let err = open_scan(&flat).unwrap_err().to_string();
    assert_eq!(err, read_volume(&flat).unwrap_err().to_string());
    assert!(err.contains("this image is 2-D"), "{err}");
}

#[test]
fn mapped_scans_report_crop_errors_like_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let mhd = dir.path().join("scan.mhd");
    write_pair(&mhd, SHAPE, wide_voxels(SHAPE));
    let scan = open_scan(&mhd).unwrap();
    let volume = read_volume(&mhd).unwrap();
    let mut out = vec![0i16; CROP_VOXELS];
    for centre in [[-1, 5, 5], [5, SHAPE[1] as i64, 5], [5, 5, i64::MAX]] {
        let err = crop_candidate(&scan, centre, &mut out).unwrap_err();
        assert!(matches!(err, CropError::CenterOutside { .. }), "{err}");
        assert_eq!(Err(err), crop_candidate(&volume, centre, &mut out));
    }
    let mut short = vec![0i16; CROP_VOXELS - 1];
    assert!(matches!(
        crop_candidate(&scan, [5, 5, 5], &mut short),
        Err(CropError::BufferSize { .. })
    ));

    let thin = dir.path().join("thin.mhd");
    let shape = [CROP_SHAPE[0] - 1, 60, 60];
    write_pair(&thin, shape, wide_voxels(shape));
    assert!(matches!(
        crop_candidate(&open_scan(&thin).unwrap(), [3, 3, 3], &mut out),
        Err(CropError::VolumeTooSmall { .. })
    ));
}
