//! `prepcache seg` on a synthetic data set (`prepcache synth`'s generator):
//! what it writes here, resuming and rebuilding in [`resume`], scans and
//! candidate lists at the edges of what works in [`edges`].

mod edges;
mod resume;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use luna_synth::{generate, Preset, SynthOptions};
use shared::cache::{CacheReader, Codec};
use shared::crop::crop_start_for;
use shared::lock::FolderLock;
use shared::luna::{find_series, load_candidates, validation_series, CandidateInfo};
use shared::metaimage::read_volume;
use shared::seg::{split_chunk, TRAIN_CHUNK_SHAPE, TRAIN_CROP, TRAIN_DIR, VAL_DIR};

use super::{run, SegOptions, SegReport, SegStatus};

const SERIES: usize = 4;
/// Ranks 0 and 3 of the four series are validation.
const VAL_STRIDE: usize = 3;

fn synth(data: &Path) {
    let opts = SynthOptions {
        out: data.to_owned(),
        series: SERIES,
        seed: 7,
        preset: Preset::Tiny,
    };
    generate(&opts, &|_, _| {}).unwrap();
}

fn seg(data: &Path, out: &Path) -> anyhow::Result<SegReport> {
    match seg_status(data, out, VAL_STRIDE, false)? {
        SegStatus::Built(report) => Ok(report),
        _ => panic!("nothing was built"),
    }
}

/// A run with `val_stride` that must build.
fn seg_with_stride(data: &Path, out: &Path, val_stride: usize) -> SegReport {
    match seg_status(data, out, val_stride, false).unwrap() {
        SegStatus::Built(report) => report,
        _ => panic!("nothing was built"),
    }
}

/// A run with `val_stride`, asked to stop before it starts when `stop`.
fn seg_status(data: &Path, out: &Path, val_stride: usize, stop: bool) -> anyhow::Result<SegStatus> {
    let opts = SegOptions {
        data: data.to_owned(),
        out: out.to_owned(),
        candidates: None,
        annotations: None,
        val_stride,
        threads: 2,
        codec: Codec::default(),
        shard: None,
    };
    run(&opts, &AtomicBool::new(stop))
}

/// The book's candidate list of the data set, and its series by uid with
/// whether each is validation.
fn candidate_list(data: &Path) -> (Vec<CandidateInfo>, Vec<(String, bool)>) {
    let series = find_series(data).unwrap();
    let list = load_candidates(
        &data.join("candidates.csv"),
        &data.join("annotations.csv"),
        &series,
    )
    .unwrap();
    let uids: Vec<&String> = series.keys().collect();
    let val = validation_series(&uids, VAL_STRIDE).unwrap();
    let split = uids.into_iter().cloned().zip(val).collect();
    (list.candidates, split)
}

/// Whether the mask plane (rows × cols) has a positive pixel within 2
/// pixels of (r, c).
fn mask_near(mask: &[i16], cols: usize, r: i64, c: i64) -> bool {
    mask.iter().enumerate().any(|(k, &m)| {
        let (mr, mc) = ((k / cols) as i64, (k % cols) as i64);
        m == 1 && (mr - r).abs() <= 2 && (mc - c).abs() <= 2
    })
}

/// `seg-train` holds exactly the training series' positives, in canonical
/// order, each with nodule pixels at its centre.
fn check_train(data: &Path, train: &CacheReader, list: &[CandidateInfo], split: &[(String, bool)]) {
    let is_train = |uid: &str| split.iter().any(|(u, v)| u == uid && !v);
    let expected: Vec<_> = list
        .iter()
        .filter(|c| c.is_nodule && is_train(&c.series_uid))
        .map(|c| (c.series_uid.as_str(), c.center_xyz, c.diameter_mm))
        .collect();
    let got: Vec<_> = train
        .entries()
        .iter()
        .map(|e| (train.series_uid(e.series), e.center_xyz, e.diameter_mm))
        .collect();
    assert!(!expected.is_empty(), "no training positive to check");
    assert_eq!(got, expected);
    assert_eq!(train.manifest().crop_shape, TRAIN_CHUNK_SHAPE);
    let scans = find_series(data).unwrap();
    let (mut dec, mut chunk) = (train.decoder(), vec![0i16; train.chunk_voxels()]);
    for (k, e) in train.entries().iter().enumerate() {
        train.read_chunk(&mut dec, k, &mut chunk).unwrap();
        let (_, mask) = split_chunk(&chunk, TRAIN_CHUNK_SHAPE).unwrap();
        let shape = read_volume(&scans[train.series_uid(e.series)])
            .unwrap()
            .shape;
        let irc = e.center_irc.map(i64::from);
        let start = crop_start_for(shape, TRAIN_CROP, irc).unwrap();
        let (r, c) = (irc[1] - start[1] as i64, irc[2] - start[2] as i64);
        assert!(
            mask_near(mask, 96, r, c),
            "entry {k}: no mask pixel near the nodule"
        );
    }
}

/// `seg-val` holds every slice of each validation series and nothing else,
/// with the mask on at each positive's centre slice.
fn check_val(data: &Path, val: &CacheReader, list: &[CandidateInfo], split: &[(String, bool)]) {
    let scans = find_series(data).unwrap();
    let val_uids: Vec<&String> = split.iter().filter(|(_, v)| *v).map(|(u, _)| u).collect();
    assert_eq!(val.series_uids().iter().collect::<Vec<_>>(), val_uids);
    let [_, rows, cols] = val.manifest().crop_shape;
    let (mut dec, mut chunk) = (val.decoder(), vec![0i16; val.chunk_voxels()]);
    let mut first = 0;
    for (s, uid) in val_uids.iter().enumerate() {
        let volume = read_volume(&scans[*uid]).unwrap();
        assert_eq!([volume.shape[1], volume.shape[2]], [rows, cols]);
        let slices = volume.shape[0];
        let entries = &val.entries()[first..first + slices];
        for (i, e) in entries.iter().enumerate() {
            assert_eq!((e.series as usize, e.center_irc[0] as usize), (s, i));
        }
        for p in list.iter().filter(|c| c.is_nodule && &&c.series_uid == uid) {
            let irc = volume.geometry.xyz_to_irc(p.center_xyz).unwrap();
            let k = first + irc[0] as usize;
            assert!(val.entries()[k].is_nodule, "{uid} slice {}", irc[0]);
            val.read_chunk(&mut dec, k, &mut chunk).unwrap();
            let (_, mask) = split_chunk(&chunk, val.manifest().crop_shape).unwrap();
            assert!(mask_near(mask, cols, irc[1], irc[2]), "{uid} at {irc:?}");
        }
        first += slices;
    }
    assert_eq!(
        first,
        val.len(),
        "entries beyond the validation series' slices"
    );
}

#[test]
fn writes_both_sub_caches_from_a_synthetic_data_set_and_refuses_a_locked_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("seg"));
    synth(&data);
    let report = seg(&data, &out).unwrap();
    assert_eq!(report.series, SERIES);
    let (list, split) = candidate_list(&data);
    let train = CacheReader::open(&out.join(TRAIN_DIR)).unwrap();
    let val = CacheReader::open(&out.join(VAL_DIR)).unwrap();
    assert_eq!(train.manifest(), &report.manifests.train);
    assert!(train.manifest().skipped.is_empty() && val.manifest().skipped.is_empty());
    assert_eq!((report.built, report.reused), (SERIES, 0));
    check_train(&data, &train, &list, &split);
    check_val(&data, &val, &list, &split);

    // A second writer while the folder is in use is refused, naming it.
    let _held = FolderLock::acquire(&out, "prepcache seg").unwrap();
    let err = format!("{:#}", seg(&data, &out).unwrap_err());
    assert!(
        err.contains("in use by another prepcache seg (PID "),
        "{err}"
    );
    assert!(err.contains(&out.display().to_string()), "{err}");
}

#[test]
fn an_unreadable_scan_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("seg"));
    synth(&data);
    let (_, split) = candidate_list(&data);
    let (uid, _) = split.iter().find(|(_, v)| !v).unwrap();
    let mhd = find_series(&data).unwrap()[uid].clone();
    std::fs::write(mhd.with_extension("raw"), b"short").unwrap();
    let report = seg(&data, &out).unwrap();
    let skipped = &report.manifests.train.skipped;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!((&skipped[0].series_uid, skipped[0].center_xyz), (uid, None));
    assert!(
        skipped[0].reason.contains(&*mhd.to_string_lossy()),
        "{skipped:?}"
    );
    assert!(!skipped[0].reason.contains('\n'));
    let train = CacheReader::open(&out.join(TRAIN_DIR)).unwrap();
    assert!(train.series_uids().iter().all(|u| u != uid));
}
