//! A segmentation cache written from synthetic scans with nodule blobs,
//! read back with the ordinary cache reader and with `scripts/lunacache.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shared::cache::{CacheReader, Codec};
use shared::geometry::{Geometry, Xyz};
use shared::luna::validation_series;
use shared::nodule_mask::scan_annotation_mask;
use shared::seg::{
    slice_with_context, split_chunk, training_sample, write_seg_cache, Positive, SegSeries,
    TRAIN_CHUNK_SHAPE, TRAIN_DIR, VAL_DIR,
};
use shared::volume::Volume;

/// Lung-like air with noise and bright spheres at `blobs` (i, r, c).
fn scan(shape: [usize; 3], blobs: &[[usize; 3]], seed: u64) -> Volume {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hu = Vec::with_capacity(shape.iter().product());
    for i in 0..shape[0] {
        for r in 0..shape[1] {
            for c in 0..shape[2] {
                let inside = blobs.iter().any(|b| {
                    let d = |a: usize, x: usize| (a as f64 - x as f64).powi(2);
                    d(b[0], i) * 4.0 + d(b[1], r) + d(b[2], c) <= 25.0
                });
                let base: i16 = if inside { 40 } else { -850 };
                hu.push(base + rng.random_range(-30..=30));
            }
        }
    }
    hu[0] = -3024; // out-of-view padding: clipped in every chunk
    let geometry = Geometry::new([-60.0, -70.0, -300.0], [0.7, 0.8, 2.5], GEOMETRY_DIR);
    Volume::new(shape, hu, geometry).unwrap()
}

const GEOMETRY_DIR: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

fn xyz(v: &Volume, irc: [usize; 3]) -> Xyz {
    v.geometry.irc_to_xyz(irc.map(|x| x as f64))
}

/// A series: uid, shape, blob centres (i, r, c).
type Spec = (&'static str, [usize; 3], Vec<[usize; 3]>);

/// Four series, uid-sorted ranks 0 and 3 validation at stride 3.
fn series() -> Vec<SegSeries> {
    let specs: [Spec; 4] = [
        ("1.2.100", [12, 100, 100], vec![[5, 50, 50]]),
        ("1.2.200", [11, 100, 104], vec![[1, 6, 97], [7, 60, 30]]),
        ("1.2.300", [10, 100, 100], vec![[6, 40, 40]]),
        // In-plane size differs from the first validation series: skipped.
        ("1.2.400", [9, 98, 100], vec![[4, 50, 50]]),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(k, (uid, shape, blobs))| {
            let volume = scan(shape, &blobs, k as u64);
            let mut positives: Vec<Positive> = blobs
                .iter()
                .map(|&b| Positive {
                    center_xyz: xyz(&volume, b),
                    diameter_mm: 5.0 + b[0] as f64,
                })
                .collect();
            if uid == "1.2.200" {
                // Outside the scan: left out of mask and cache, and named.
                positives.push(Positive {
                    center_xyz: [500.0, 0.0, 0.0],
                    diameter_mm: 3.0,
                });
            }
            SegSeries {
                uid: uid.to_owned(),
                volume,
                positives,
            }
        })
        .collect()
}

fn python() -> PathBuf {
    std::env::var_os("LUNA_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/luna-toolkit/venv/bin/python"))
        })
        .expect("neither LUNA_PYTHON nor HOME is set")
}

/// Every chunk of a sub-cache as lunacache.py decodes it, concatenated.
fn python_chunks(dir: &Path) -> Vec<i16> {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let out = dir.join("py.bin");
    let code = "import sys; from lunacache import LunaCache; import numpy as np\n\
        c = LunaCache(sys.argv[1])\n\
        open(sys.argv[2], 'wb').write(b''.join(c.chunk(i).astype('<i2').tobytes() for i in range(len(c))))";
    let status = Command::new(python())
        .env("PYTHONPATH", &scripts)
        .args(["-c", code])
        .arg(dir)
        .arg(&out)
        .status()
        .expect("run Python (set LUNA_PYTHON or run scripts/setup.sh)");
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn all_chunks(cache: &CacheReader) -> Vec<Vec<i16>> {
    let mut dec = cache.decoder();
    (0..cache.len())
        .map(|i| {
            let mut chunk = vec![0i16; cache.chunk_voxels()];
            cache.read_chunk(&mut dec, i, &mut chunk).unwrap();
            chunk
        })
        .collect()
}

#[test]
fn seg_cache_holds_the_samples_of_each_split_readable_from_rust_and_python() {
    let dir = tempfile::tempdir().unwrap();
    let series = series();
    let uids: Vec<String> = series.iter().map(|s| s.uid.clone()).collect();
    let is_val = validation_series(&uids, 3).unwrap();
    assert_eq!(is_val, [true, false, false, true]);
    let by_uid = |uid: &str| series.iter().find(|s| s.uid == uid).unwrap();
    let mask_of = |s: &SegSeries| {
        let inside: Vec<Xyz> = s
            .positives
            .iter()
            .map(|p| p.center_xyz)
            .filter(|c| c[0] < 400.0)
            .collect();
        scan_annotation_mask(&s.volume, &inside).unwrap()
    };
    let m = write_seg_cache(
        dir.path(),
        &uids,
        3,
        Codec::default(),
        "test",
        series.clone(),
    )
    .unwrap();

    let train = CacheReader::open(&dir.path().join(TRAIN_DIR)).unwrap();
    assert_eq!(train.manifest().crop_shape, TRAIN_CHUNK_SHAPE);
    assert_eq!(train.series_uids(), ["1.2.200", "1.2.300"]);
    assert_eq!(train.len(), 3);
    assert!(train.manifest().tool.contains("seg-chunk-v1"));
    let skipped = &m.train.skipped;
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].series_uid == "1.2.200" && skipped[0].reason.contains("outside"));
    // Canonical order: largest diameter first (7 + 5 = 12, then 11, then 6).
    let diameters: Vec<f64> = train.entries().iter().map(|e| e.diameter_mm).collect();
    assert_eq!(diameters, [12.0, 11.0, 6.0]);
    for (e, chunk) in train.entries().iter().zip(all_chunks(&train)) {
        let s = by_uid(train.series_uid(e.series));
        assert!(e.is_nodule);
        let irc = e.center_irc.map(i64::from);
        assert_eq!(s.volume.geometry.xyz_to_irc(e.center_xyz).unwrap(), irc);
        let want = training_sample(&s.volume, &mask_of(s), irc).unwrap();
        assert_eq!(chunk, want.to_chunk());
        let (_, mask) = split_chunk(&chunk, TRAIN_CHUNK_SHAPE).unwrap();
        // The blob at slice 1 gets an empty mask, as in the book: its box
        // starts at slice -1, which numpy wraps to an empty slice.
        let marked = mask.contains(&1);
        assert_eq!(marked, irc[0] != 1, "mask of the blob at {irc:?}");
    }

    let val = CacheReader::open(&dir.path().join(VAL_DIR)).unwrap();
    assert_eq!(val.manifest().crop_shape, [8, 100, 100]);
    assert_eq!(val.series_uids(), ["1.2.100"]);
    assert_eq!(val.len(), 12);
    assert_eq!(m.val.skipped.len(), 1);
    assert_eq!(m.val.skipped[0].series_uid, "1.2.400");
    let s = by_uid("1.2.100");
    let mask = mask_of(s);
    for (k, (e, chunk)) in val.entries().iter().zip(all_chunks(&val)).enumerate() {
        assert_eq!(e.center_irc, [k as i32, 50, 50], "ordered by slice");
        let want = slice_with_context(&s.volume, &mask, k).unwrap();
        assert_eq!(e.is_nodule, want.mask.iter().any(|&b| b));
        assert_eq!(chunk, want.to_chunk());
    }
    assert_eq!(val.entries().iter().filter(|e| e.is_nodule).count(), 5);

    for (name, cache) in [(TRAIN_DIR, &train), (VAL_DIR, &val)] {
        let rust: Vec<i16> = all_chunks(cache).concat();
        assert_eq!(python_chunks(&dir.path().join(name)), rust, "{name}");
        let mf = cache.manifest();
        eprintln!(
            "{name}: {} entries, raw {} B, stored {} B, ratio {:.2}",
            mf.candidates,
            mf.raw_bytes,
            mf.stored_bytes,
            mf.raw_bytes as f64 / mf.stored_bytes as f64
        );
    }
}

#[test]
fn unknown_and_repeated_series_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = series();
    let uids = ["1.2.100", "1.2.200"];
    series.truncate(2);
    let again = series[1].clone();
    series.push(again);
    let err = write_seg_cache(dir.path(), &uids, 2, Codec::default(), "t", series).unwrap_err();
    assert!(err.to_string().contains("1.2.200 was given twice"), "{err}");
    let err = write_seg_cache(
        dir.path(),
        &uids[..1],
        2,
        Codec::default(),
        "t",
        self::series(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("1.2.200 is not among the 1 series"),
        "{err}"
    );
}
