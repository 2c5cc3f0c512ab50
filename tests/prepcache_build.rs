//! `prepcache build/verify/info/ls` end to end on synthetic data sets.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use luna_e2e::prepcache::*;
use shared::cache::format::{sidecar_path, MANIFEST_FILE};
use shared::cache::CacheReader;
use shared::crop::{crop_candidate, CROP_VOXELS};
use shared::luna::load_candidates;
use shared::metaimage::read_volume;

#[test]
fn every_chunk_equals_the_crop_computed_directly_in_book_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 11);
    let cache_dir = tmp.path().join("cache");
    build(&data, &cache_dir, &[]);
    let cache = CacheReader::open(&cache_dir).unwrap();

    let series = shared::luna::find_series(&data).unwrap();
    let list = load_candidates(
        &data.join("candidates.csv"),
        &data.join("annotations.csv"),
        &series,
    )
    .unwrap();
    assert_eq!(cache.len(), list.candidates.len());
    assert!(
        cache.len() > 50,
        "synthetic set too small to mean much: {}",
        cache.len()
    );

    let volumes: std::collections::BTreeMap<_, _> = series
        .iter()
        .map(|(uid, mhd)| (uid.clone(), read_volume(mhd).unwrap()))
        .collect();
    let mut dec = cache.decoder();
    let (mut got, mut want) = (vec![0i16; CROP_VOXELS], vec![0i16; CROP_VOXELS]);
    for (i, (e, c)) in cache.entries().iter().zip(&list.candidates).enumerate() {
        let uid = cache.series_uid(e.series);
        assert_eq!(
            (uid, e.center_xyz, e.is_nodule, e.diameter_mm),
            (
                c.series_uid.as_str(),
                c.center_xyz,
                c.is_nodule,
                c.diameter_mm
            )
        );
        let volume = &volumes[uid];
        let irc = volume.geometry.xyz_to_irc(c.center_xyz).unwrap();
        assert_eq!(e.center_irc.map(i64::from), irc, "candidate {i}");
        crop_candidate(volume, irc, &mut want).unwrap();
        cache.read_chunk(&mut dec, i, &mut got).unwrap();
        assert!(got == want, "candidate {i} differs from the direct crop");
    }
    ok(&["verify", s(&cache_dir)]);
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["info", s(&cache_dir), "--json"])).unwrap();
    assert_eq!(info["candidates"], cache.len());
    let ls = ok(&["ls", s(&cache_dir), "--json"]);
    let first: serde_json::Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
    assert_eq!(first["series_uid"], list.candidates[0].series_uid.as_str());
    assert_eq!(ls.lines().count(), cache.len());
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn first_sidecar(cache: &Path) -> bool {
    fs::read_dir(cache.join("shards"))
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .unwrap_or(false)
}

/// Start a slow build (one thread, a high zstd level) and stop it with
/// `signal` as soon as its first scan is complete.
fn interrupted_build(data: &Path, cache: &Path, signal: &str) -> std::process::ExitStatus {
    let mut child = Command::new(bin())
        .args([
            "build",
            "--data",
            s(data),
            "--out",
            s(cache),
            "--threads",
            "1",
            "--level",
            "9",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first scan", Duration::from_secs(60), || {
        first_sidecar(cache)
    });
    let killed = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(
        !cache.join(MANIFEST_FILE).exists(),
        "the build finished before it could be interrupted"
    );
    status
}

#[test]
fn sigkill_midway_then_rerun_resumes_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 12);
    let cache = tmp.path().join("cache");
    let status = interrupted_build(&data, &cache, "KILL");
    assert!(!status.success());
    let err = CacheReader::open(&cache)
        .err()
        .expect("a killed build must not read as complete");
    assert!(err.to_string().contains("incomplete"), "{err}");
    let verify = prepcache(&["verify", s(&cache)]);
    assert_eq!(verify.status.code(), Some(1));

    let out = build(&data, &cache, &["--level", "9"]);
    let reused: usize = out
        .lines()
        .find_map(|l| {
            l.split(" built now, ")
                .nth(1)?
                .split(" reused")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no reuse count in:\n{out}"));
    assert!(
        reused >= 1,
        "the rerun should reuse the scans finished before the kill:\n{out}"
    );
    ok(&["verify", s(&cache)]);
    let leftovers = luna_e2e::prepcache::temporaries(&cache);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn ctrl_c_stops_cleanly_with_a_resumable_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 13);
    let cache = tmp.path().join("cache");
    let status = interrupted_build(&data, &cache, "INT");
    assert_eq!(status.code(), Some(130));
    let out = build(&data, &cache, &["--level", "9"]);
    assert!(!out.contains(" 0 reused"), "{out}");
    ok(&["verify", s(&cache)]);
}

#[test]
fn sigterm_stops_like_ctrl_c_with_exit_143_and_a_resumable_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 15);
    let cache = tmp.path().join("cache");
    let status = interrupted_build(&data, &cache, "TERM");
    assert_eq!(status.code(), Some(143));
    let out = build(&data, &cache, &["--level", "9"]);
    assert!(!out.contains(" 0 reused"), "{out}");
    ok(&["verify", s(&cache)]);
}

#[test]
fn a_corrupt_byte_makes_verify_fail_naming_the_candidate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2, 14);
    let cache_dir = tmp.path().join("cache");
    build(&data, &cache_dir, &[]);
    let victim = 7;
    let (uid, shard, at) = {
        let cache = CacheReader::open(&cache_dir).unwrap();
        let e = cache.entries()[victim];
        let uid = cache.series_uid(e.series).to_owned();
        (
            uid.clone(),
            cache_dir.join(&cache.shards()[e.shard as usize].path),
            e.offset as usize + e.length as usize / 3,
        )
    };
    let mut bytes = fs::read(&shard).unwrap();
    bytes[at] = bytes[at].wrapping_add(1);
    fs::write(&shard, bytes).unwrap();

    let out = prepcache(&["verify", s(&cache_dir)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("candidate {victim} ")), "{stderr}");
    assert!(
        stderr.contains(&uid) && stderr.contains("CRC32 mismatch"),
        "{stderr}"
    );
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
}

#[test]
fn missing_and_truncated_scans_are_skipped_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 15);
    let scans = scans(&data);
    let (gone_uid, gone) = &scans[0];
    let (cut_uid, cut) = &scans[1];
    fs::remove_file(gone).unwrap();
    let raw = cut.with_extension("raw");
    let len = fs::metadata(&raw).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let cache_dir = tmp.path().join("cache");
    let strict = prepcache(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&cache_dir),
        "--strict",
    ]);
    assert_eq!(strict.status.code(), Some(1));
    // The scan not on disk is found before any scan is read.
    let (_, stderr) = text(&strict);
    assert!(
        stderr.contains(gone_uid.as_str()) && stderr.contains("candidates.csv line "),
        "{stderr}"
    );
    assert!(
        CacheReader::open(&cache_dir).is_err(),
        "--strict must leave the cache incomplete"
    );

    let out = build(&data, &cache_dir, &[]);
    assert!(out.contains(&format!("unusable scan {cut_uid}")), "{out}");
    assert!(out.contains("not on disk 1 series"), "{out}");
    let cache = CacheReader::open(&cache_dir).unwrap();
    assert_eq!(cache.manifest().series, 2);
    assert_eq!(cache.manifest().missing_series, 1);
    assert!(cache
        .series_uids()
        .iter()
        .all(|u| u != gone_uid && u != cut_uid));
    assert_eq!(cache.manifest().skipped.len(), 1);
    ok(&["verify", s(&cache_dir)]);
}

#[test]
fn unchanged_rebuild_is_a_no_op_and_a_changed_scan_rebuilds_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 16);
    let cache_dir = tmp.path().join("cache");
    build(&data, &cache_dir, &[]);
    let manifest_before = fs::read(cache_dir.join(MANIFEST_FILE)).unwrap();

    let again = build(&data, &cache_dir, &[]);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(
        fs::read(cache_dir.join(MANIFEST_FILE)).unwrap(),
        manifest_before
    );

    // Rewrite one scan's voxels (same values, new mtime): only it is redone.
    let scans = scans(&data);
    let touched = &scans[1].0;
    let raw = scans[1].1.with_extension("raw");
    let mtime = |uid: &str| {
        fs::metadata(cache_dir.join(sidecar_path(uid)))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = scans.iter().map(|(u, _)| mtime(u)).collect();
    std::thread::sleep(Duration::from_millis(20));
    let bytes = fs::read(&raw).unwrap();
    fs::write(&raw, &bytes).unwrap();
    let out = build(&data, &cache_dir, &[]);
    assert!(out.contains("(1 built now, 2 reused"), "{out}");
    for (k, (uid, _)) in scans.iter().enumerate() {
        assert_eq!(mtime(uid) != before[k], uid == touched, "scan {uid}");
    }
    // Same voxels, so the same content: the index fingerprint is unchanged.
    let cache = CacheReader::open(&cache_dir).unwrap();
    let old: serde_json::Value = serde_json::from_slice(&manifest_before).unwrap();
    assert_eq!(old["fingerprint"], cache.manifest().fingerprint.as_str());

    // A different codec level changes every chunk's inputs.
    let relevel = build(&data, &cache_dir, &["--level", "2"]);
    assert!(relevel.contains("(3 built now, 0 reused"), "{relevel}");
    ok(&["verify", s(&cache_dir)]);
}

#[test]
fn bad_input_gives_an_error_naming_the_file_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let out = prepcache(&[
        "build",
        "--data",
        s(&missing),
        "--out",
        s(&tmp.path().join("c")),
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("nothing-here") && !stderr.contains("panicked"),
        "{stderr}"
    );

    let out = prepcache(&["info", s(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("nothing-here"), "{}", text(&out).1);

    let bogus = tmp.path().join("bogus.mhd");
    fs::write(&bogus, "NDims = 3\nElementDataFile = LOCAL\n").unwrap();
    let out = prepcache(&["inspect", s(&bogus)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("bogus.mhd") && !text(&out).1.contains("panicked"),
        "{}",
        text(&out).1
    );
}
