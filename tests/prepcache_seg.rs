//! `prepcache seg` as a user runs it: stopped by SIGINT, SIGTERM or
//! SIGKILL mid-run, it resumes to the cache an uninterrupted run writes;
//! `prepcache verify` checks the folder's two sub-caches and names a
//! corrupt chunk; a rerun on unchanged data does nothing.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use luna_e2e::prepcache::{bin, ok, prepcache, s, synth, text};

const SUBS: [&str; 2] = ["seg-train", "seg-val"];

/// One thread and a slow zstd level: long enough to stop midway.
fn seg_args<'a>(data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "seg",
        "--data",
        s(data),
        "--out",
        s(out),
        "--val-stride",
        "3",
        "--threads",
        "1",
        "--level",
        "9",
    ]
}

fn any_record(out: &Path) -> bool {
    SUBS.iter().any(|sub| {
        fs::read_dir(out.join(sub).join("shards")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
    })
}

/// Start a run and send `signal` once its first series is recorded;
/// returns the exit code and stderr.
fn stopped_run(data: &Path, out: &Path, signal: &str) -> (Option<i32>, String) {
    let child = Command::new(bin())
        .args(seg_args(data, out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !any_record(out) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no series recorded"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let run = child.wait_with_output().unwrap();
    for sub in SUBS {
        assert!(
            !out.join(sub).join("manifest.json").exists(),
            "the run finished before it could be stopped"
        );
    }
    (
        run.status.code(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

/// `a` and `b` hold the same bytes in every index, manifest and shard.
fn assert_same_cache(a: &Path, b: &Path) {
    for sub in SUBS {
        let (a, b) = (a.join(sub), b.join(sub));
        for file in ["index.bin", "manifest.json"] {
            assert!(
                fs::read(a.join(file)).unwrap() == fs::read(b.join(file)).unwrap(),
                "{sub}/{file}"
            );
        }
        let shards = |dir: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir.join("shards"))
                .unwrap()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "zst"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert!(shards(&a) == shards(&b), "{sub}: shards differ");
    }
}

fn stop_and_resume(signal: &str, code: Option<i32>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 8, 5);
    let (out, fresh) = (tmp.path().join("seg"), tmp.path().join("fresh"));
    ok(&seg_args(&data, &fresh));
    let (status, stderr) = stopped_run(&data, &out, signal);
    assert_eq!(status, code, "{stderr}");
    if code.is_some() {
        let advice = "series are done and kept; rerun the same command to resume";
        assert!(stderr.contains(advice), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let incomplete = prepcache(&["verify", s(&out)]);
    assert_eq!(incomplete.status.code(), Some(1), "{:?}", text(&incomplete));
    let resumed = ok(&seg_args(&data, &out));
    assert!(!resumed.contains(" 0 reused"), "{resumed}");
    assert_same_cache(&out, &fresh);
    ok(&["verify", s(&out)]);
}

#[test]
fn seg_ctrl_c_stops_between_series_and_resumes_to_the_same_cache() {
    stop_and_resume("INT", Some(130));
}

#[test]
fn seg_sigterm_stops_like_ctrl_c_with_exit_143() {
    stop_and_resume("TERM", Some(143));
}

#[test]
fn seg_killed_midway_resumes_to_the_same_cache() {
    stop_and_resume("KILL", None);
}

#[test]
fn seg_rerun_is_a_no_op_and_verify_checks_both_sub_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 9);
    let out = tmp.path().join("seg");
    let args = [
        "seg",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--val-stride",
        "3",
    ];
    ok(&args);
    let again = ok(&args);
    assert!(
        again.contains("up to date") && again.contains("nothing to do"),
        "{again}"
    );
    let verified = ok(&["verify", s(&out)]);
    assert!(verified.contains("OK"), "{verified}");
    ok(&["verify", s(&out.join("seg-val"))]);

    // One byte of a validation chunk changed: named, with its sub-cache.
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("seg-val/manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["tool"].as_str().unwrap().contains("seg-chunk-v1"),
        "{manifest}"
    );
    let shard = fs::read_dir(out.join("seg-val/shards"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "zst"))
        .unwrap();
    let mut bytes = fs::read(&shard).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&shard, bytes).unwrap();
    let bad = prepcache(&["verify", s(&out)]);
    let (_, stderr) = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("seg-val/: ") && !stderr.contains("seg-train/: "),
        "{stderr}"
    );
}
