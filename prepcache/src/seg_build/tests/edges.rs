//! Scans and candidate lists at the edges of what works, as real files: a
//! positive at the scan's edge (its crop shifted inside, as the book's
//! `getRawCandidate` does), scans smaller than the crop (the positive
//! skipped and named), a training series with no positive (said), and no
//! positive in any training series (refused in one line).

use std::fs;
use std::path::Path;

use shared::cache::CacheReader;
use shared::crop::crop_start_for;
use shared::nodule_mask::{annotation_mask, HuGrid, BOOK_THRESHOLD_HU};
use shared::seg::{split_chunk, NO_POSITIVE_REASON, TRAIN_CHUNK_SHAPE, TRAIN_CROP, TRAIN_DIR};

use super::seg_status;
use crate::seg_build::without_positives;

/// Air, with a sphere of soft tissue (100 HU) of radius 3 voxels at `ball`.
fn volume(shape: [usize; 3], ball: Option<[usize; 3]>) -> Vec<i16> {
    let [slices, rows, cols] = shape;
    let mut voxels = vec![-1000i16; slices * rows * cols];
    let Some([bi, br, bc]) = ball else {
        return voxels;
    };
    for (k, v) in voxels.iter_mut().enumerate() {
        let (i, r, c) = (k / (rows * cols), k / cols % rows, k % cols);
        let d2 = [(i, bi), (r, br), (c, bc)]
            .iter()
            .map(|&(a, b)| (a as i64 - b as i64).pow(2))
            .sum::<i64>();
        if d2 <= 9 {
            *v = 100;
        }
    }
    voxels
}

/// A MetaImage scan with 1 mm voxels at the origin, so voxel (i, r, c)
/// is at x = c, y = r, z = i mm.
fn write_scan(data: &Path, uid: &str, shape: [usize; 3], voxels: &[i16]) {
    let dir = data.join("subset0");
    fs::create_dir_all(&dir).unwrap();
    let [slices, rows, cols] = shape;
    let header = format!(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n\
         TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\nElementSpacing = 1 1 1\n\
         DimSize = {cols} {rows} {slices}\nElementType = MET_SHORT\nElementDataFile = {uid}.raw\n"
    );
    fs::write(dir.join(format!("{uid}.mhd")), header).unwrap();
    let bytes: Vec<u8> = voxels.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(dir.join(format!("{uid}.raw")), bytes).unwrap();
}

/// A scan of the test data set: uid, shape, a positive at (i, r, c).
type TestScan<'a> = (&'a str, [usize; 3], Option<[usize; 3]>);

/// The scans and their CSVs; with `val_stride` 10 the first uid is the
/// one validation series.
fn data_set(data: &Path, scans: &[TestScan]) {
    let mut candidates = String::from("seriesuid,coordX,coordY,coordZ,class\n");
    let mut annotations = String::from("seriesuid,coordX,coordY,coordZ,diameter_mm\n");
    for &(uid, shape, positive) in scans {
        write_scan(data, uid, shape, &volume(shape, positive));
        // A negative row in every series, so each is in the split.
        candidates.push_str(&format!("{uid},1,1,0,0\n"));
        if let Some([i, r, c]) = positive {
            candidates.push_str(&format!("{uid},{c},{r},{i},1\n"));
            annotations.push_str(&format!("{uid},{c},{r},{i},6\n"));
        }
    }
    fs::write(data.join("candidates.csv"), candidates).unwrap();
    fs::write(data.join("annotations.csv"), annotations).unwrap();
}

/// Entry `k` of `train` is the crop around `positive` of a scan of
/// `shape` made by [`volume`]: the book's start ([`crop_start_for`],
/// shifted inside), the scan's HU there, the centre inside it, and the
/// mask plane the book's mask of the crop's centre slice. Returns the
/// start and the mask plane.
fn check_crop(
    train: &CacheReader,
    k: usize,
    shape: [usize; 3],
    positive: [usize; 3],
) -> ([usize; 3], Vec<i16>) {
    let [_, rows, cols] = shape;
    let start = crop_start_for(shape, TRAIN_CROP, positive.map(|v| v as i64)).unwrap();
    let scan = volume(shape, Some(positive));
    let (mut dec, mut chunk) = (train.decoder(), vec![0i16; train.chunk_voxels()]);
    train.read_chunk(&mut dec, k, &mut chunk).unwrap();
    let (hu, mask) = split_chunk(&chunk, TRAIN_CHUNK_SHAPE).unwrap();
    let at =
        |p: usize, r: usize, c: usize| ((start[0] + p) * rows + start[1] + r) * cols + start[2] + c;
    for (n, &v) in hu.iter().enumerate() {
        let (p, r, c) = (n / (96 * 96), n / 96 % 96, n % 96);
        assert_eq!(v, scan[at(p, r, c)], "HU at plane {p} ({r}, {c})");
    }
    let centre = [0, 1, 2].map(|a| positive[a] - start[a]);
    assert_eq!(
        hu[(centre[0] * 96 + centre[1]) * 96 + centre[2]],
        100,
        "centre"
    );
    let grid = HuGrid::new(&scan, shape).unwrap();
    let book = annotation_mask(&grid, &[positive.map(|v| v as i64)], BOOK_THRESHOLD_HU).unwrap();
    for (n, &m) in mask.iter().enumerate() {
        let want = book[at(3, n / 96, n % 96)];
        assert_eq!(m, i16::from(want), "mask at ({}, {})", n / 96, n % 96);
    }
    (start, mask.to_vec())
}

#[test]
fn edge_positives_are_shifted_inside_too_small_scans_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("seg"));
    let shape = [10, 100, 100];
    // At the in-plane corner, and next to the first slice.
    let (corner, first_slice) = ([5, 5, 94], [1, 50, 50]);
    data_set(
        &data,
        &[
            ("1.0", shape, None),
            ("1.1", shape, Some(corner)),
            ("1.2", [10, 80, 80], Some([5, 40, 40])),
            ("1.3", [5, 100, 100], Some([2, 50, 50])),
            ("1.4", shape, None),
            ("1.5", shape, Some(first_slice)),
        ],
    );
    let report = super::seg_with_stride(&data, &out, 10);
    let train = CacheReader::open(&out.join(TRAIN_DIR)).unwrap();
    assert_eq!(train.len(), 2);
    let k = |uid: &str| {
        let e = train
            .entries()
            .iter()
            .position(|e| train.series_uid(e.series) == uid);
        e.unwrap()
    };
    assert_eq!(
        train.entries()[k("1.1")].center_irc,
        corner.map(|v| v as i32)
    );

    // Shifted inside by 43 rows and 42 columns, the nodule marked at the
    // centre of the mask plane (the crop's centre slice, the book's
    // pos_a[3:4]).
    let (start, mask) = check_crop(&train, k("1.1"), shape, corner);
    assert_eq!(start, [2, 0, 4]);
    assert_eq!(mask[5 * 96 + 90], 1);
    // Next to the first slice: slices 0..7, the centre on plane 1. The
    // book's mask wraps its box to the last slice there (a negative
    // Python slice start) and is empty; ours is the book's.
    let (start, _) = check_crop(&train, k("1.5"), shape, first_slice);
    assert_eq!(start, [0, 2, 2]);

    // Too small for 7 × 96 × 96: the positive skipped, naming why.
    let skipped = &train.manifest().skipped;
    let reason = |uid: &str| {
        let s = skipped.iter().find(|s| s.series_uid == uid).unwrap();
        s.reason.clone()
    };
    assert!(
        reason("1.2").contains("fewer than the crop's 96"),
        "{skipped:?}"
    );
    assert!(
        reason("1.3").contains("fewer than the crop's 7"),
        "{skipped:?}"
    );
    // No positive: said, in the manifest and the count.
    assert_eq!(reason("1.4"), NO_POSITIVE_REASON);
    assert_eq!(without_positives(train.manifest()), 1);
    assert_eq!(report.manifests.train, *train.manifest());
}

#[test]
fn no_positive_in_any_training_series_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("seg"));
    data_set(
        &data,
        &[
            ("1.0", [10, 100, 100], Some([5, 50, 50])),
            ("1.1", [10, 100, 100], None),
            ("1.2", [10, 100, 100], None),
        ],
    );
    let err = format!("{:#}", seg_status(&data, &out, 10, false).err().unwrap());
    assert!(
        err.contains("none of the 2 training series has a positive"),
        "{err}"
    );
    assert!(
        err.contains("candidates.csv") && !err.contains('\n'),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");
    let err = format!("{:#}", seg_status(&data, &out, 1, false).err().unwrap());
    assert!(
        err.contains("--val-stride 1: all 3 series are validation"),
        "{err}"
    );
}
