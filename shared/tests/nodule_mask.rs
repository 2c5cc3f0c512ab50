//! Chapter 13's nodule mask: hand-made volumes with known answers, then the
//! Rust mask against a transcription of the book's code
//! (scripts/book_mask.py) voxel for voxel on random volumes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use shared::geometry::{Geometry, Irc, Xyz};
use shared::nodule_mask::{
    annotation_mask, bounding_box_mask, centres_irc, nodule_box, scan_annotation_mask, HuGrid,
    NoduleBox, NoduleMaskError, BOOK_THRESHOLD_HU,
};
use shared::volume::Volume;

const AIR: i16 = -1000;
const NODULE: i16 = 40;
const T: f32 = BOOK_THRESHOLD_HU;

/// A volume of air in `[i][r][c]` order.
struct Vol {
    shape: [usize; 3],
    hu: Vec<i16>,
}

impl Vol {
    fn air(shape: [usize; 3]) -> Vol {
        Vol {
            shape,
            hu: vec![AIR; shape.iter().product()],
        }
    }

    fn flat(&self, [i, r, c]: [usize; 3]) -> usize {
        (i * self.shape[1] + r) * self.shape[2] + c
    }

    fn set(&mut self, irc: [usize; 3], v: i16) {
        let k = self.flat(irc);
        self.hu[k] = v;
    }

    /// Fill the inclusive box `lo..=hi` with `v`.
    fn fill(&mut self, lo: [usize; 3], hi: [usize; 3], v: i16) {
        for irc in cells(lo, hi) {
            self.set(irc, v);
        }
    }

    fn grid(&self) -> HuGrid<'_, i16> {
        HuGrid::new(&self.hu, self.shape).unwrap()
    }

    fn mask(&self, centres: &[Irc]) -> BTreeSet<[usize; 3]> {
        self.voxels_of(&annotation_mask(&self.grid(), centres, T).unwrap())
    }

    fn boxes(&self, centres: &[Irc]) -> BTreeSet<[usize; 3]> {
        self.voxels_of(&bounding_box_mask(&self.grid(), centres, T).unwrap())
    }

    fn voxels_of(&self, mask: &[bool]) -> BTreeSet<[usize; 3]> {
        let all = cells([0; 3], self.shape.map(|d| d - 1));
        all.into_iter().filter(|&v| mask[self.flat(v)]).collect()
    }
}

/// Every voxel of the inclusive box `lo..=hi`.
fn cells(lo: [usize; 3], hi: [usize; 3]) -> BTreeSet<[usize; 3]> {
    let mut out = BTreeSet::new();
    for i in lo[0]..=hi[0] {
        for r in lo[1]..=hi[1] {
            for c in lo[2]..=hi[2] {
                out.insert([i, r, c]);
            }
        }
    }
    out
}

#[test]
fn bright_box_in_air_is_exactly_its_box() {
    let mut v = Vol::air([20, 30, 30]);
    // Half-widths 2, 4, 3 around (10, 14, 14).
    v.fill([8, 10, 11], [12, 18, 17], NODULE);
    let b = nodule_box(&v.grid(), [10, 14, 14], T).unwrap();
    // Each search stops at the first air voxel: one past the half-width.
    assert_eq!(b.radius, [3, 5, 4]);
    // The column slice ends with the row radius (14 + 5), as the book's does.
    assert_eq!(b.ranges, [7..14, 9..20, 10..20]);
    assert_eq!(v.mask(&[[10, 14, 14]]), cells([8, 10, 11], [12, 18, 17]));
}

#[test]
fn growth_stops_at_the_first_side_that_falls_below_the_threshold() {
    // Bright 5 below the centre but only 2 above: radius 3 (c + 3 is air).
    let mut v = Vol::air([20, 9, 9]);
    v.fill([5, 4, 4], [12, 4, 4], NODULE);
    let b = nodule_box(&v.grid(), [10, 4, 4], T).unwrap();
    assert_eq!(b.radius[0], 3);
    assert_eq!(b.ranges[0], 7..14);
    // The bright voxels below the box (5, 6) stay out of the mask.
    assert_eq!(v.mask(&[[10, 4, 4]]), cells([7, 4, 4], [12, 4, 4]));

    // Mirrored: bright far above, 2 below: the minus side stops it at 3.
    let mut v = Vol::air([20, 9, 9]);
    v.fill([8, 4, 4], [16, 4, 4], NODULE);
    assert_eq!(nodule_box(&v.grid(), [10, 4, 4], T).unwrap().radius[0], 3);
    assert_eq!(v.mask(&[[10, 4, 4]]), cells([8, 4, 4], [13, 4, 4]));

    // -700 itself is not above the threshold.
    let mut v = Vol::air([20, 9, 9]);
    v.fill([5, 4, 4], [15, 4, 4], NODULE);
    v.set([13, 4, 4], -700);
    assert_eq!(nodule_box(&v.grid(), [10, 4, 4], T).unwrap().radius[0], 3);
}

#[test]
fn a_one_voxel_nodule_gets_a_five_wide_box_before_the_and() {
    let mut v = Vol::air([12, 12, 12]);
    v.set([6, 6, 6], NODULE);
    // Bright, off every search line, inside the box: in the mask.
    v.set([8, 4, 8], NODULE);
    // Bright just outside the box: not.
    v.set([9, 6, 6], NODULE);
    let b = nodule_box(&v.grid(), [6, 6, 6], T).unwrap();
    assert_eq!(b.radius, [2, 2, 2]);
    assert_eq!(v.boxes(&[[6, 6, 6]]), cells([4, 4, 4], [8, 8, 8]));
    assert_eq!(v.mask(&[[6, 6, 6]]), BTreeSet::from([[6, 6, 6], [8, 4, 8]]));
}

#[test]
fn a_nodule_at_the_far_end_steps_back_after_the_index_error() {
    // Bright from slice 6 to the last (9); centre 8: hu[10] is an IndexError,
    // so the radius falls back to 1 and slice 6 is left out.
    let mut v = Vol::air([10, 9, 9]);
    v.fill([6, 3, 3], [9, 5, 5], NODULE);
    let b = nodule_box(&v.grid(), [8, 4, 4], T).unwrap();
    assert_eq!(b.radius[0], 1);
    assert_eq!(b.ranges[0], 7..10);
    assert_eq!(v.mask(&[[8, 4, 4]]), cells([7, 3, 3], [9, 5, 5]));
}

#[test]
fn near_index_zero_python_wraps_reads_and_slice_starts() {
    // Centre slice 1. Bright 0..=4 and, at the far end, 10..=11: hu[1 - 2]
    // and hu[1 - 3] wrap to slices 11 and 10, so the growth goes on to 4
    // (hu[5] is air). The slice -3:6 then starts at slice 9, past its
    // stop: the box, and so this candidate's mask, is empty.
    let mut v = Vol::air([12, 9, 9]);
    v.fill([0, 4, 4], [4, 4, 4], NODULE);
    v.fill([10, 4, 4], [11, 4, 4], NODULE);
    let b = nodule_box(&v.grid(), [1, 4, 4], T).unwrap();
    assert_eq!(b.radius[0], 4);
    assert_eq!(b.ranges[0], 9..9);
    assert!(b.is_empty());
    assert!(v.mask(&[[1, 4, 4]]).is_empty());

    // A whole bright line: growth runs to the far end (IndexError at
    // 3 + 7 = 10: radius 6), reading wrapped slices on the way, and the
    // slice -3:10 marks slices 7..=9 only, not the centre's.
    let mut v = Vol::air([10, 9, 9]);
    v.fill([0, 4, 4], [9, 4, 4], NODULE);
    let b = nodule_box(&v.grid(), [3, 4, 4], T).unwrap();
    assert_eq!(b.radius[0], 6);
    assert_eq!(b.ranges[0], 7..10);
    assert_eq!(v.mask(&[[3, 4, 4]]), cells([7, 4, 4], [9, 4, 4]));
}

#[test]
fn two_candidates_give_the_union_of_their_masks() {
    let mut v = Vol::air([20, 20, 20]);
    v.fill([3, 3, 3], [5, 5, 5], NODULE);
    v.fill([12, 10, 11], [16, 13, 15], NODULE);
    let one = v.mask(&[[4, 4, 4]]);
    let two = v.mask(&[[14, 12, 13]]);
    assert_eq!(one, cells([3, 3, 3], [5, 5, 5]));
    let both = v.mask(&[[4, 4, 4], [14, 12, 13]]);
    assert_eq!(both, one.union(&two).copied().collect());
    // The same candidate twice changes nothing.
    assert_eq!(v.mask(&[[4, 4, 4], [4, 4, 4]]), one);
}

#[test]
fn values_are_compared_as_stored_not_clipped() {
    // Bone at 3000 HU and -3024 padding: compared as stored, which for a
    // -700 threshold is what clipping to [-1000, 1000] first would give.
    let mut v = Vol::air([9, 9, 9]);
    v.fill([3, 3, 3], [5, 5, 5], 3000);
    v.set([3, 3, 3], -3024);
    assert_eq!(
        nodule_box(&v.grid(), [4, 4, 4], T).unwrap().radius,
        [2, 2, 2]
    );
    let mut want = cells([3, 3, 3], [5, 5, 5]);
    want.remove(&[3, 3, 3]);
    assert_eq!(v.mask(&[[4, 4, 4]]), want);
}

#[test]
fn centres_outside_the_volume_and_wrong_sizes_are_refused() {
    let v = Vol::air([4, 5, 6]);
    let err = annotation_mask(&v.grid(), &[[1, 1, 1], [1, 5, 1]], T).unwrap_err();
    assert_eq!(
        err,
        NoduleMaskError::CentreOutside {
            candidate: 1,
            centre: [1, 5, 1],
            shape: [4, 5, 6]
        }
    );
    assert!(err.to_string().contains("positive candidate 1"));
    assert!(nodule_box(&v.grid(), [-1, 0, 0], T).is_err());
    let short = vec![AIR; 10];
    assert!(matches!(
        HuGrid::new(&short, [4, 5, 6]),
        Err(NoduleMaskError::VolumeSize { got: 10, .. })
    ));
}

#[test]
fn scan_mask_takes_world_centres_through_the_books_rounding() {
    let mut v = Vol::air([10, 10, 10]);
    v.fill([4, 4, 4], [6, 6, 6], NODULE);
    let g = Geometry::new(
        [-10.0, -20.0, 30.0],
        [0.5, 0.5, 2.0],
        shared::geometry::IDENTITY,
    );
    // (c, r, i) = (4.6, 5.4, 5.0): the centre voxel is (5, 5, 5).
    let xyz = g.irc_to_xyz([5.0, 5.4, 4.6]);
    assert_eq!(centres_irc(&g, &[xyz]).unwrap(), vec![[5, 5, 5]]);
    let scan = Volume::new(v.shape, v.hu.clone(), g).unwrap();
    let mask = scan_annotation_mask(&scan, &[xyz]).unwrap();
    assert_eq!(v.voxels_of(&mask), cells([4, 4, 4], [6, 6, 6]));
}

// ---- the transcription of the book's code, on files this test writes ----

/// A centre as the book gets it (a world point) or an index for edges.
#[derive(Clone, Copy)]
enum Centre {
    Xyz(Xyz),
    Irc(Irc),
}

struct Case {
    name: String,
    vol: Vol,
    geometry: Geometry,
    centres: Vec<Centre>,
}

/// What the book's code gives: mask_a, boundingBox_a, centres, radii.
struct BookResult {
    mask: Vec<bool>,
    boxes: Vec<bool>,
    centres: Vec<Irc>,
    radii: Vec<[i64; 3]>,
}

/// `LUNA_PYTHON`, else the toolkit's virtualenv; fails (never skips)
/// without one, since the cross-check is the point of this test.
fn python() -> PathBuf {
    let path = std::env::var_os("LUNA_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/luna-toolkit/venv/bin/python"))
        })
        .expect("neither LUNA_PYTHON nor HOME is set: cannot find the Python with numpy");
    assert!(
        path.exists(),
        "Python with numpy for the book-mask cross-check not found at {}: run scripts/setup.sh or set LUNA_PYTHON",
        path.display()
    );
    path
}

fn run_book(case: &Case) -> BookResult {
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<u8> = case.vol.hu.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.path().join("volume.raw"), raw).unwrap();
    let g = &case.geometry;
    let candidates: Vec<_> = case
        .centres
        .iter()
        .map(|c| match c {
            Centre::Xyz(xyz) => json!({ "xyz": xyz }),
            Centre::Irc(irc) => json!({ "irc": irc }),
        })
        .collect();
    let spec = json!({
        "shape": case.vol.shape, "threshold": T,
        "origin_xyz": g.origin, "spacing_xyz": g.spacing, "direction": g.direction,
        "candidates": candidates,
    });
    std::fs::write(dir.path().join("case.json"), spec.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/book_mask.py");
    let out = Command::new(python())
        .arg(script)
        .arg(dir.path().join("case.json"))
        .arg(dir.path().join("volume.raw"))
        .arg(dir.path())
        .output()
        .expect("failed to start the cross-check Python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: book_mask.py failed:\n{stderr}",
        case.name
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = |name: &str| -> Vec<bool> {
        let b = std::fs::read(dir.path().join(name)).unwrap();
        b.into_iter().map(|x| x != 0).collect()
    };
    BookResult {
        mask: bytes("mask.u8"),
        boxes: bytes("box.u8"),
        centres: serde_json::from_value(printed["centres_irc"].clone()).unwrap(),
        radii: serde_json::from_value(printed["radii"].clone()).unwrap(),
    }
}

/// The first voxel where two masks differ, for the failure message.
fn first_difference(vol: &Vol, a: &[bool], b: &[bool]) -> Option<([usize; 3], bool, bool)> {
    let all = cells([0; 3], vol.shape.map(|d| d - 1));
    all.into_iter()
        .map(|v| (v, a[vol.flat(v)], b[vol.flat(v)]))
        .find(|(_, x, y)| x != y)
}

fn assert_matches_book(case: &Case) {
    let book = run_book(case);
    let grid = case.vol.grid();
    let xyz_or_irc = |c: &Centre| match *c {
        Centre::Xyz(xyz) => centres_irc(&case.geometry, &[xyz]).unwrap()[0],
        Centre::Irc(irc) => irc,
    };
    let centres: Vec<Irc> = case.centres.iter().map(xyz_or_irc).collect();
    assert_eq!(centres, book.centres, "{}: centre voxels", case.name);
    let boxes: Vec<NoduleBox> = centres
        .iter()
        .map(|&c| nodule_box(&grid, c, T).unwrap())
        .collect();
    let radii: Vec<[i64; 3]> = boxes.iter().map(|b| b.radius).collect();
    assert_eq!(radii, book.radii, "{}: radii (i, r, c)", case.name);
    let ours = [
        (
            "boundingBox_a",
            bounding_box_mask(&grid, &centres, T).unwrap(),
            &book.boxes,
        ),
        (
            "mask_a",
            annotation_mask(&grid, &centres, T).unwrap(),
            &book.mask,
        ),
    ];
    for (what, rust, python) in ours {
        assert_eq!(rust.len(), python.len(), "{}: {what} size", case.name);
        if let Some((v, r, p)) = first_difference(&case.vol, &rust, python) {
            panic!(
                "{}: {what} differs first at {v:?}: Rust {r}, book {p} (boxes {boxes:?})",
                case.name
            );
        }
    }
    // The cases must mean something: some voxels in every mask.
    assert!(book.mask.iter().any(|&m| m), "{}: empty mask", case.name);
}

/// Lung-like noise around the threshold, padding and bone, plus bright
/// ellipsoids; returns the volume and the blobs' centres.
fn random_volume(rng: &mut ChaCha8Rng, shape: [usize; 3], blobs: usize) -> (Vol, Vec<Irc>) {
    let mut v = Vol::air(shape);
    for x in v.hu.iter_mut() {
        *x = match rng.random_range(0..100) {
            0..=51 => AIR + rng.random_range(0..60),
            // Exactly the threshold, which is not above it.
            52..=54 => -700,
            55..=84 => rng.random_range(-850..-550),
            85..=94 => rng.random_range(-100..150),
            _ => [-3024, -2000, 1500, 3071][rng.random_range(0..4)],
        };
    }
    let mut centres = Vec::new();
    for _ in 0..blobs {
        let c = shape.map(|d| rng.random_range(0..d));
        let half = [0; 3].map(|_| rng.random_range(0.6..5.0f64));
        for irc in cells([0; 3], shape.map(|d| d - 1)) {
            let d2: f64 = (0..3)
                .map(|a| ((irc[a] as f64 - c[a] as f64) / half[a]).powi(2))
                .sum();
            if d2 <= 1.0 {
                v.set(irc, rng.random_range(-60..200));
            }
        }
        centres.push(c.map(|x| x as i64));
    }
    (v, centres)
}

/// Centres at and next to both ends of every axis, where the book's
/// IndexError and wrap-around paths run.
fn edge_centres(shape: [usize; 3]) -> Vec<Irc> {
    let ends = |n: usize| -> Vec<i64> {
        let n = n as i64;
        let mut v = vec![0, 1, 2, n - 3, n - 2, n - 1];
        v.retain(|&x| (0..n).contains(&x));
        v
    };
    let (is, rs, cs) = (ends(shape[0]), ends(shape[1]), ends(shape[2]));
    let mut out = Vec::new();
    for (k, &i) in is.iter().enumerate() {
        out.push([i, rs[k % rs.len()], cs[(k + 1) % cs.len()]]);
        out.push([i, rs[(k + 2) % rs.len()], cs[(k + 3) % cs.len()]]);
    }
    out
}

fn irc_case(name: &str, seed: u64, shape: [usize; 3], blobs: usize, bright: bool) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut vol, mut centres) = random_volume(&mut rng, shape, blobs);
    if bright {
        // Mostly tissue: growth runs into the ends and wraps often.
        for x in vol.hu.iter_mut().filter(|x| **x < -700) {
            if rng.random_bool(0.9) {
                *x = 30;
            }
        }
    }
    centres.extend(edge_centres(shape));
    Case {
        name: name.to_string(),
        vol,
        geometry: Geometry::default(),
        centres: centres.into_iter().map(Centre::Irc).collect(),
    }
}

/// World centres through `geometry`: `offset` picks each continuous
/// position around the blob centre (kept inside the volume).
fn xyz_case(name: &str, seed: u64, shape: [usize; 3], geometry: Geometry, ties: bool) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (vol, centres) = random_volume(&mut rng, shape, 8);
    let mut world = Vec::new();
    for c in centres {
        let mut pos = [0.0; 3];
        for a in 0..3 {
            let jitter = if ties {
                // Exactly halfway (exact with power-of-two spacings): numpy
                // rounds ties to even, and so must we.
                [-0.5, 0.5][rng.random_range(0..2)]
            } else {
                rng.random_range(-0.45..0.45)
            };
            let hi = shape[a] as f64 - 1.0;
            pos[a] = (c[a] as f64 + jitter).clamp(0.0, hi);
        }
        world.push(Centre::Xyz(geometry.irc_to_xyz(pos)));
    }
    Case {
        name: name.to_string(),
        vol,
        geometry,
        centres: world,
    }
}

#[test]
fn rust_mask_equals_the_books_code_voxel_for_voxel() {
    let flip = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]];
    let luna = Geometry::new([-198.1, -195.0, -335.21], [0.7617, 0.7617, 2.5], flip);
    let exact = Geometry::new([-100.0, 64.0, -300.0], [0.5, 0.25, 2.0], flip);
    let identity = Geometry::new(
        [10.0, -20.0, 5.5],
        [0.5, 1.0, 1.5],
        shared::geometry::IDENTITY,
    );
    let cases = [
        irc_case("small random", 1, [9, 17, 21], 6, false),
        irc_case("larger random", 2, [16, 24, 20], 10, false),
        irc_case("bright, growth to the ends", 3, [11, 13, 15], 4, true),
        irc_case("thin volume", 4, [3, 12, 12], 3, true),
        irc_case("one slice", 5, [1, 9, 10], 2, true),
        irc_case("tiny cube", 6, [2, 2, 2], 1, true),
        xyz_case("LUNA-like geometry", 7, [12, 20, 20], luna, false),
        xyz_case("exact ties", 8, [12, 20, 20], exact, true),
        xyz_case("identity direction", 9, [10, 16, 18], identity, false),
    ];
    for case in &cases {
        assert_matches_book(case);
    }
}
