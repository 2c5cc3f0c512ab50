//! Segmentation samples on in-memory volumes: where the training crop
//! lands (the book's rounding and shifting), the clamped context of a full
//! slice, which mask slice comes along, HU clipping.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shared::crop::{crop_start, crop_start_for, CropError, CROP_SHAPE};
use shared::geometry::Geometry;
use shared::hu::{HU_MAX, HU_MIN};
use shared::seg::{
    slice_with_context, split_chunk, training_sample, SegError, SegSample, CHUNK_PLANES,
    TRAIN_CHUNK_SHAPE, TRAIN_CROP,
};
use shared::volume::Volume;

/// Values well beyond the HU window (so clipping shows) and a random mask.
fn random_scan(shape: [usize; 3], seed: u64) -> (Volume, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let hu = (0..n).map(|_| rng.random_range(-3024..=3071)).collect();
    let mask = (0..n).map(|_| rng.random_bool(0.3)).collect();
    let volume = Volume::new(shape, hu, Geometry::default()).unwrap();
    (volume, mask)
}

/// The book's `int(round(center - width/2))`, via f64's ties-to-even (as
/// Python's `round`), then its two edge shifts.
fn book_start(center: i64, width: usize, size: usize) -> usize {
    let start = (center as f64 - width as f64 / 2.0).round_ties_even() as i64;
    if start < 0 {
        0
    } else if start as usize + width > size {
        size - width
    } else {
        start as usize
    }
}

/// The expected sample, voxel by voxel, from the volume.
fn assert_sample(volume: &Volume, mask: &[bool], s: &SegSample, planes: [usize; 7]) {
    let (rows, cols) = (s.rows, s.cols);
    for (k, &slice) in planes.iter().enumerate() {
        for r in 0..rows {
            for c in 0..cols {
                let at = [slice, s.start[1] + r, s.start[2] + c];
                let want = volume.get(at).clamp(HU_MIN, HU_MAX);
                assert_eq!(s.hu[(k * rows + r) * cols + c], want, "plane {k} at {at:?}");
            }
        }
    }
    for r in 0..rows {
        for c in 0..cols {
            let at = volume.index([s.mask_slice, s.start[1] + r, s.start[2] + c]);
            assert_eq!(s.mask[r * cols + c], mask[at]);
        }
    }
}

#[test]
fn crop_start_for_rounds_odd_widths_to_even_like_python() {
    let shape = [40, 200, 200];
    for ci in 0..40 {
        let start = crop_start_for(shape, TRAIN_CROP, [ci, 100, 100]).unwrap();
        assert_eq!(start[0], book_start(ci, 7, 40), "centre slice {ci}");
    }
    // The two cases the docs name: centre 10 starts at 6 (one low), 11 at 8.
    assert_eq!(
        crop_start_for(shape, TRAIN_CROP, [10, 100, 100]).unwrap()[0],
        6
    );
    assert_eq!(
        crop_start_for(shape, TRAIN_CROP, [11, 100, 100]).unwrap()[0],
        8
    );
    // The classifier's API is unchanged.
    let c = [20, 60, 70];
    assert_eq!(crop_start(shape, c), crop_start_for(shape, CROP_SHAPE, c));
}

#[test]
fn training_crops_shift_inside_at_every_edge() {
    let shape = [23, 130, 117];
    let (volume, mask) = random_scan(shape, 1);
    let along = |n: usize| {
        let n = n as i64;
        vec![
            0,
            1,
            2,
            3,
            4,
            10,
            11,
            47,
            48,
            49,
            n / 2,
            n - 49,
            n - 48,
            n - 4,
            n - 2,
            n - 1,
        ]
        .into_iter()
        .filter(move |&v| (0..n).contains(&v))
    };
    for ci in along(shape[0]) {
        for cr in along(shape[1]) {
            for cc in [0, 48, 60, shape[2] as i64 - 1] {
                let s = training_sample(&volume, &mask, [ci, cr, cc]).unwrap();
                let want = [
                    book_start(ci, 7, shape[0]),
                    book_start(cr, 96, shape[1]),
                    book_start(cc, 96, shape[2]),
                ];
                assert_eq!(s.start, want, "centre {:?}", [ci, cr, cc]);
                assert_eq!((s.rows, s.cols), (96, 96));
                assert_eq!(
                    s.mask_slice,
                    s.start[0] + 3,
                    "mask is the crop's centre slice"
                );
                let planes = std::array::from_fn(|k| s.start[0] + k);
                assert_sample(&volume, &mask, &s, planes);
            }
        }
    }
}

#[test]
fn training_sample_refuses_small_volumes_and_outside_centres() {
    let (v, m) = random_scan([7, 95, 96], 2);
    assert!(matches!(
        training_sample(&v, &m, [3, 40, 40]),
        Err(SegError::Crop(CropError::VolumeTooSmall {
            size: 95,
            width: 96,
            ..
        }))
    ));
    let (v, m) = random_scan([6, 96, 96], 3);
    assert!(matches!(
        training_sample(&v, &m, [3, 40, 40]),
        Err(SegError::Crop(CropError::VolumeTooSmall {
            size: 6,
            width: 7,
            ..
        }))
    ));
    let (v, m) = random_scan([7, 96, 96], 4);
    for centre in [[7, 40, 40], [-1, 40, 40], [3, 96, 0], [3, 0, -1]] {
        assert_eq!(
            training_sample(&v, &m, centre),
            Err(SegError::Crop(CropError::CenterOutside {
                center: centre,
                shape: [7, 96, 96]
            }))
        );
    }
    let err = training_sample(&v, &m[1..], [3, 40, 40]).unwrap_err();
    assert!(matches!(err, SegError::MaskSize { got, .. } if got == 7 * 96 * 96 - 1));
    assert!(err.to_string().contains("mask holds"), "{err}");
}

#[test]
fn full_slices_clamp_their_context_at_both_ends() {
    let shape = [9, 5, 6];
    let (volume, mask) = random_scan(shape, 5);
    let cases: [(usize, [usize; 7]); 5] = [
        (0, [0, 0, 0, 0, 1, 2, 3]),
        (1, [0, 0, 0, 1, 2, 3, 4]),
        (4, [1, 2, 3, 4, 5, 6, 7]),
        (7, [4, 5, 6, 7, 8, 8, 8]),
        (8, [5, 6, 7, 8, 8, 8, 8]),
    ];
    for (index, planes) in cases {
        let s = slice_with_context(&volume, &mask, index).unwrap();
        assert_eq!((s.rows, s.cols, s.mask_slice), (5, 6, index));
        assert_eq!(s.hu.len(), 7 * 30);
        assert_sample(&volume, &mask, &s, planes);
    }
    // A one-slice scan: all seven planes are that slice.
    let (one, one_mask) = random_scan([1, 4, 4], 6);
    let s = slice_with_context(&one, &one_mask, 0).unwrap();
    assert_sample(&one, &one_mask, &s, [0; 7]);
}

#[test]
fn full_slices_refuse_missing_slices() {
    let (volume, mask) = random_scan([3, 4, 4], 7);
    assert_eq!(
        slice_with_context(&volume, &mask, 3),
        Err(SegError::SliceOutside {
            index: 3,
            slices: 3
        })
    );
    let empty = Volume::new([0, 4, 4], Vec::new(), Geometry::default()).unwrap();
    let err = slice_with_context(&empty, &[], 0).unwrap_err();
    assert_eq!(err, SegError::NoSlices { shape: [0, 4, 4] });
    assert!(err.to_string().contains("no slices"));
}

#[test]
fn hu_is_clipped_to_the_window_and_the_chunk_splits_back() {
    let (volume, mask) = random_scan([8, 96, 100], 8);
    let s = training_sample(&volume, &mask, [4, 50, 50]).unwrap();
    assert!(s.hu.iter().all(|v| (HU_MIN..=HU_MAX).contains(v)));
    assert!(s.hu.contains(&HU_MIN) && s.hu.contains(&HU_MAX));
    let chunk = s.to_chunk();
    let (hu, m) = split_chunk(&chunk, TRAIN_CHUNK_SHAPE).unwrap();
    assert_eq!(hu, &s.hu[..]);
    assert!(m.iter().zip(&s.mask).all(|(&a, &b)| a == i16::from(b)));
    assert!(matches!(
        split_chunk(&chunk[1..], TRAIN_CHUNK_SHAPE),
        Err(SegError::ChunkSize {
            planes: CHUNK_PLANES,
            ..
        })
    ));
}
