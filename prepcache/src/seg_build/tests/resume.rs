//! Resuming and rebuilding: a rerun on unchanged inputs writes nothing, a
//! run cut short anywhere resumes to the cache an uninterrupted run
//! writes, and changed inputs rebuild only the series they change.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use shared::cache::format::{INDEX_FILE, MANIFEST_FILE, SHARD_DIR};
use shared::cache::CacheReader;
use shared::luna::find_series;
use shared::seg::{TRAIN_DIR, VAL_DIR};

use super::{seg, seg_status, synth, SERIES, VAL_STRIDE};
use crate::seg_build::{SegReport, SegStatus};

fn built(status: SegStatus) -> SegReport {
    match status {
        SegStatus::Built(report) => report,
        _ => panic!("nothing was built"),
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// `a` and `b` are the same segmentation cache: index and manifest bytes,
/// every shard's bytes, and nothing else in `shards/` but one resume
/// record per series of the sub-cache.
fn assert_same_cache(a: &Path, b: &Path) {
    for sub in [TRAIN_DIR, VAL_DIR] {
        let (a, b) = (a.join(sub), b.join(sub));
        for file in [INDEX_FILE, MANIFEST_FILE] {
            let (x, y) = (
                fs::read(a.join(file)).unwrap(),
                fs::read(b.join(file)).unwrap(),
            );
            assert!(x == y, "{sub}/{file} differs");
        }
        let cache = CacheReader::open(&a).unwrap();
        for shard in cache.shards() {
            let (x, y) = (fs::read(a.join(&shard.path)), fs::read(b.join(&shard.path)));
            assert!(x.unwrap() == y.unwrap(), "{sub}/{} differs", shard.path);
        }
        for dir in [&a, &b] {
            let left = names(&dir.join(SHARD_DIR));
            assert!(!left.iter().any(|n| n.ends_with(".tmp")), "{left:?}");
            assert!(left
                .iter()
                .all(|n| n.ends_with(".zst") || n.ends_with(".json")));
        }
        assert_eq!(names(&a.join(SHARD_DIR)), names(&b.join(SHARD_DIR)));
    }
}

fn modified(path: &Path) -> std::time::SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn an_unchanged_rerun_is_up_to_date_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("seg"));
    synth(&data);
    seg(&data, &out).unwrap();
    let manifests: Vec<PathBuf> = [TRAIN_DIR, VAL_DIR]
        .iter()
        .map(|d| out.join(d).join(MANIFEST_FILE))
        .collect();
    let before: Vec<_> = manifests.iter().map(|m| modified(m)).collect();
    let listing = (
        names(&out.join(TRAIN_DIR).join(SHARD_DIR)),
        names(&out.join(VAL_DIR).join(SHARD_DIR)),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    match seg_status(&data, &out, VAL_STRIDE, false).unwrap() {
        SegStatus::UpToDate(report) => assert_eq!((report.reused, report.built), (SERIES, 0)),
        _ => panic!("an unchanged rerun should be up to date"),
    }
    let after: Vec<_> = manifests.iter().map(|m| modified(m)).collect();
    assert_eq!(before, after, "an up-to-date run rewrote a manifest");
    let again = (
        names(&out.join(TRAIN_DIR).join(SHARD_DIR)),
        names(&out.join(VAL_DIR).join(SHARD_DIR)),
    );
    assert_eq!(listing, again);
}

#[test]
fn a_run_cut_short_anywhere_resumes_to_the_uninterrupted_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out, fresh) = (
        dir.path().join("data"),
        dir.path().join("seg"),
        dir.path().join("fresh"),
    );
    synth(&data);
    seg(&data, &fresh).unwrap();
    // Stopped before a single series: nothing reads as complete.
    assert!(matches!(
        seg_status(&data, &out, VAL_STRIDE, true).unwrap(),
        SegStatus::Interrupted
    ));
    assert!(CacheReader::open(&out.join(TRAIN_DIR)).is_err());
    seg(&data, &out).unwrap();
    // What a kill or crash leaves: no manifests, one series' record lost
    // (killed between its shard and its record), one shard cut short and
    // a half-written shard.
    let train = out.join(TRAIN_DIR);
    for sub in [TRAIN_DIR, VAL_DIR] {
        fs::remove_file(out.join(sub).join(MANIFEST_FILE)).unwrap();
    }
    let reference = CacheReader::open(&fresh.join(TRAIN_DIR)).unwrap();
    let lost_record = shared::cache::format::sidecar_path(&reference.series_uids()[0]);
    fs::remove_file(train.join(lost_record)).unwrap();
    let shard = &reference.shards()[1].path;
    let bytes = fs::read(train.join(shard)).unwrap();
    fs::write(train.join(shard), &bytes[..bytes.len() / 2]).unwrap();
    fs::write(train.join(SHARD_DIR).join("x.zst.tmp"), b"half").unwrap();

    let report = built(seg_status(&data, &out, VAL_STRIDE, false).unwrap());
    assert_eq!((report.built, report.reused), (2, SERIES - 2));
    assert_same_cache(&out, &fresh);
}

#[test]
fn changed_inputs_rebuild_only_what_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out, fresh) = (
        dir.path().join("data"),
        dir.path().join("seg"),
        dir.path().join("fresh"),
    );
    synth(&data);
    seg(&data, &out).unwrap();
    // A scan rewritten (same bytes, new mtime): that series only.
    let mhd = find_series(&data).unwrap().into_values().next().unwrap();
    let raw = mhd.with_extension("raw");
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&raw, fs::read(&raw).unwrap()).unwrap();
    let report = built(seg_status(&data, &out, VAL_STRIDE, false).unwrap());
    assert_eq!((report.built, report.reused), (1, SERIES - 1));

    // Another stride moves series between the sub-caches: those are
    // rebuilt, the rest kept, and the moved ones' old files go.
    let report = built(seg_status(&data, &out, 2, false).unwrap());
    // Stride 3 validates ranks 0 and 3, stride 2 ranks 0 and 2.
    assert_eq!((report.built, report.reused), (2, SERIES - 2));
    built(seg_status(&data, &fresh, 2, false).unwrap());
    assert_same_cache(&out, &fresh);
}
