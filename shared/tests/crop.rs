//! Candidate crops: placement, shifting at the edges, exact voxel values.

use shared::crop::{crop_candidate, crop_start, CropError, CROP_SHAPE, CROP_VOXELS};
use shared::geometry::Geometry;
use shared::hu::{HU_MAX, HU_MIN};
use shared::volume::Volume;

/// Every voxel encodes its own index, so a crop reveals where it came from
/// (a shift along any axis changes the code). Codes stay inside LUNA's HU
/// window, which crops clip to.
fn coded_volume(shape: [usize; 3]) -> Volume {
    let mut hu = Vec::with_capacity(shape.iter().product());
    for i in 0..shape[0] {
        for r in 0..shape[1] {
            for c in 0..shape[2] {
                hu.push(code([i, r, c]));
            }
        }
    }
    Volume::new(shape, hu, Geometry::default()).expect("one value per voxel")
}

fn code(irc: [usize; 3]) -> i16 {
    ((irc[0] * 37 + irc[1] * 41 + irc[2]) % 2001) as i16 - 1000
}

fn crop(volume: &Volume, center: [i64; 3]) -> Result<([usize; 3], Vec<i16>), CropError> {
    let mut out = vec![0i16; CROP_VOXELS];
    crop_candidate(volume, center, &mut out).map(|start| (start, out))
}

fn assert_crop_matches(volume: &Volume, start: [usize; 3], out: &[i16]) {
    for i in 0..CROP_SHAPE[0] {
        for r in 0..CROP_SHAPE[1] {
            for c in 0..CROP_SHAPE[2] {
                let got = out[(i * CROP_SHAPE[1] + r) * CROP_SHAPE[2] + c];
                assert_eq!(
                    got,
                    volume.get([start[0] + i, start[1] + r, start[2] + c]),
                    "at {:?}",
                    [i, r, c]
                );
            }
        }
    }
}

#[test]
fn centred_crop_starts_half_a_width_before_the_centre() {
    let v = coded_volume([40, 60, 70]);
    let (start, out) = crop(&v, [20, 30, 35]).unwrap();
    assert_eq!(start, [4, 6, 11]);
    assert_crop_matches(&v, start, &out);
    // The centre voxel sits at (16, 24, 24) in the crop.
    assert_eq!(out[(16 * 48 + 24) * 48 + 24], code([20, 30, 35]));
}

#[test]
fn crops_near_the_low_edge_shift_to_zero() {
    let v = coded_volume([40, 60, 70]);
    let (start, out) = crop(&v, [0, 3, 23]).unwrap();
    assert_eq!(start, [0, 0, 0]);
    assert_crop_matches(&v, start, &out);
    assert_eq!(out[0], code([0, 0, 0]));
}

#[test]
fn crops_near_the_high_edge_shift_inside() {
    let v = coded_volume([40, 60, 70]);
    let (start, out) = crop(&v, [39, 59, 69]).unwrap();
    assert_eq!(start, [8, 12, 22]);
    assert_crop_matches(&v, start, &out);
    assert_eq!(out[CROP_VOXELS - 1], code([39, 59, 69]));
    // A centre exactly half a width from the end needs no shift.
    assert_eq!(crop_start(v.shape, [24, 36, 46]).unwrap(), [8, 12, 22]);
    assert_eq!(crop_start(v.shape, [23, 35, 45]).unwrap(), [7, 11, 21]);
}

#[test]
fn volume_exactly_crop_sized_gives_the_whole_volume() {
    let v = coded_volume(CROP_SHAPE);
    let (start, out) = crop(&v, [5, 40, 1]).unwrap();
    assert_eq!(start, [0, 0, 0]);
    assert_eq!(out, v.voxels);
}

#[test]
fn volume_shorter_than_the_crop_is_an_error_naming_the_axis() {
    let v = coded_volume([20, 60, 60]);
    let err = crop(&v, [10, 30, 30]).unwrap_err();
    assert_eq!(
        err,
        CropError::VolumeTooSmall {
            axis: "i (slices)",
            size: 20,
            width: 32
        }
    );
    assert!(err.to_string().contains("20") && err.to_string().contains("32"));
    let v = coded_volume([32, 48, 47]);
    assert!(matches!(
        crop(&v, [1, 1, 1]),
        Err(CropError::VolumeTooSmall {
            axis: "c (columns)",
            ..
        })
    ));
}

#[test]
fn centre_outside_the_volume_is_its_own_error() {
    let v = coded_volume([40, 60, 70]);
    for center in [
        [-1, 30, 30],
        [40, 30, 30],
        [20, 60, 30],
        [20, 30, 70],
        [20, -5, i64::MAX],
    ] {
        assert_eq!(
            crop(&v, center).unwrap_err(),
            CropError::CenterOutside {
                center,
                shape: [40, 60, 70]
            }
        );
    }
}

#[test]
fn wrong_buffer_or_inconsistent_volume_are_errors() {
    let v = coded_volume([40, 60, 70]);
    let mut small = vec![0i16; 10];
    assert!(matches!(
        crop_candidate(&v, [20, 30, 30], &mut small),
        Err(CropError::BufferSize { got: 10, .. })
    ));
    let mut broken = v.clone();
    // Fields stay public, so a hand-edited volume can still disagree with
    // its shape.
    broken.voxels.truncate(100);
    assert!(matches!(
        crop(&broken, [20, 30, 30]),
        Err(CropError::InconsistentVolume { got: 100, .. })
    ));
}

#[test]
fn crops_are_clipped_to_the_hu_window_the_volume_is_not() {
    let mut v = coded_volume(CROP_SHAPE);
    v.voxels[0] = i16::MIN;
    v.voxels[1] = -1001;
    v.voxels[2] = i16::MAX;
    let (_, out) = crop(&v, [0, 0, 0]).unwrap();
    assert_eq!(out[..3], [HU_MIN, HU_MIN, HU_MAX]);
    assert_eq!(out[3..], v.voxels[3..]);
    assert_eq!(v.voxels[0], i16::MIN, "the volume keeps its values");
}
