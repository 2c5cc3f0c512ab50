//! Ctrl-C (SIGINT) during training: exit 130, finished epochs kept, and the
//! printed resume command finishes the run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigint_stops_between_batches_and_the_advice_resumes_the_run() {
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
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupt: stopping after this batch"),
        "{stderr}"
    );
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
