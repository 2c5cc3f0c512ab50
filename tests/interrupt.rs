//! Ctrl-C (SIGINT) or SIGTERM during training: exit 130 or 143, finished
//! epochs kept, and the printed resume command finishes the run. SIGBUS
//! from a cache cut short under a run: one line naming it, exit 74.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigint_stops_between_batches_and_the_advice_resumes_the_run() {
    stop_and_resume("INT", 130, "interrupt: stopping after this batch");
}

#[test]
fn sigterm_stops_like_ctrl_c_with_exit_143_and_the_advice_resumes_the_run() {
    stop_and_resume(
        "TERM",
        143,
        "interrupt (SIGTERM): stopping after this batch",
    );
}

/// Starts a long run, sends `signal` once the first checkpoint exists, and
/// checks the exit status, the message and that the advice resumes it.
fn stop_and_resume(signal: &str, code: i32, message: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 3, 5);
    let runs = tmp.path().join("runs");
    let child = Command::new(luna_e2e::train::bin())
        .args(["--cache".as_ref(), cache.as_os_str()])
        .args(["--runs".as_ref(), runs.as_os_str()])
        .args(["--device", "cpu", "--threads", "1", "--batch-size", "4"])
        .args([
            "--epoch-samples",
            "8",
            "--val-samples",
            "4",
            "--epochs",
            "1000",
        ])
        .args(["--seed", "3", "sigint"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first checkpoint exists.
    let started = Instant::now();
    let checkpoint = loop {
        let found = std::fs::read_dir(runs.join("p2ch12"))
            .ok()
            .and_then(|dirs| {
                dirs.filter_map(Result::ok)
                    .map(|d| d.path())
                    .find(|p| p.join("trainer.safetensors").exists())
            });
        if let Some(dir) = found {
            break dir;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint after two minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The advice names this run and the epoch count to resume with.
    let advice = stderr
        .lines()
        .find_map(|l| l.strip_prefix("train: to go on: "))
        .unwrap_or_else(|| panic!("no resume advice in:\n{stderr}"));
    assert_eq!(
        advice,
        format!("train --resume {} --epochs 1000", checkpoint.display())
    );
    let leftovers: Vec<_> = std::fs::read_dir(&checkpoint)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "half-written files: {leftovers:?}");
    let state: serde_json::Value = {
        let lines = luna_e2e::train::metrics_lines(&checkpoint.join("metrics.jsonl"));
        lines.last().unwrap().clone()
    };
    let done = state["epoch"].as_u64().unwrap();
    assert!((1..1000).contains(&done), "{done}");

    // Follow the advice, with fewer epochs so it ends: the run goes on from
    // where it stopped, and metrics.jsonl has each epoch's two lines once.
    let target = (done + 2).to_string();
    let resumed = luna_e2e::train::train(&[
        "--resume".as_ref(),
        checkpoint.as_os_str(),
        "--epochs".as_ref(),
        target.as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
    ]);
    assert!(resumed.contains("resuming after epoch"), "{resumed}");
    let lines = luna_e2e::train::metrics_lines(&checkpoint.join("metrics.jsonl"));
    let phases: Vec<(u64, String)> = lines
        .iter()
        .map(|l| {
            (
                l["epoch"].as_u64().unwrap(),
                l["phase"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (1..=done + 2)
        .flat_map(|e| [(e, "trn".to_owned()), (e, "val".to_owned())])
        .collect();
    assert_eq!(phases, want);
}

#[test]
fn a_cache_truncated_under_a_run_ends_it_with_one_line_naming_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 3, 6);
    let runs = tmp.path().join("runs");
    let child = Command::new(luna_e2e::train::bin())
        .args(["--cache".as_ref(), cache.as_os_str()])
        .args(["--runs".as_ref(), runs.as_os_str()])
        .args(["--device", "cpu", "--threads", "1", "--batch-size", "4"])
        .args(["--epoch-samples", "8", "--val-samples", "4"])
        .args(["--epochs", "1000", "--seed", "3", "sigbus"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once an epoch is saved the cache is mapped and read batch after batch.
    let started = Instant::now();
    while !std::fs::read_dir(runs.join("p2ch12")).is_ok_and(|dirs| {
        dirs.filter_map(Result::ok)
            .any(|d| d.path().join("trainer.safetensors").exists())
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint after two minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for shard in std::fs::read_dir(cache.join("shards")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.extension().is_none_or(|x| x != "zst") {
            continue;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&shard)
            .unwrap();
        file.set_len(0).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("modified while in use"))
        .unwrap_or_else(|| panic!("no message in:\n{stderr}"));
    assert!(line.contains(&cache.display().to_string()), "{line}");
}
