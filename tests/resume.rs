//! Two epochs straight equal one epoch plus a resumed epoch, on the CPU with
//! a seed, bit for bit: for each optimizer, with a learning-rate schedule
//! whose rate depends on the restored step count.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use serde_json::Value;

/// Steps per epoch of these runs: 12 samples in batches of 4.
const STEPS_PER_EPOCH: f64 = 3.0;
const EPOCHS: f64 = 2.0;

fn args(cache: &Path, runs: &Path, epochs: &str, settings: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--cache".as_ref(),
        cache.as_os_str(),
        "--runs".as_ref(),
        runs.as_os_str(),
        "--epochs".as_ref(),
        epochs.as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
        "--batch-size".as_ref(),
        "4".as_ref(),
        "--epoch-samples".as_ref(),
        "12".as_ref(),
        "--val-samples".as_ref(),
        "8".as_ref(),
        "--balanced".as_ref(),
        "--augmented".as_ref(),
        "--seed".as_ref(),
        "77".as_ref(),
        OsStr::new("resume"),
    ]
    .iter()
    .map(|s: &&OsStr| s.to_os_string())
    .collect();
    args.extend(settings.iter().map(OsString::from));
    args
}

fn train(args: &[OsString]) -> String {
    luna_e2e::train::train(&args.iter().map(|s| s.as_os_str()).collect::<Vec<_>>())
}

/// Trains two epochs with `settings` straight, and one epoch then a
/// resumed second (`settings` give a schedule that spans both epochs with
/// `--lr-schedule-epochs 2`, as a run stopped after its first epoch);
/// asserts that both leave the same metrics and weights,
/// and returns the metrics lines.
fn assert_resume_reproduces_the_uninterrupted_run(settings: &[&str]) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 3, 5);
    let (runs_a, runs_b) = (tmp.path().join("runs_a"), tmp.path().join("runs_b"));
    train(&args(&cache, &runs_a, "2", settings));
    train(&args(&cache, &runs_b, "1", settings));

    let prefix_b = runs_b.join("p2ch12");
    let ckpt_b = luna_e2e::train::find_dir(&prefix_b, "-cls-resume");
    // As if killed during epoch 2's validation: its training line was
    // written, its checkpoint was not. The resumed run must not keep it.
    let metrics_b = ckpt_b.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics_b).unwrap();
    let first = text.lines().next().unwrap().to_owned();
    text.push_str(&first.replace("\"epoch\":1", "\"epoch\":2"));
    text.push('\n');
    std::fs::write(&metrics_b, text).unwrap();
    // Resume with only the epoch count (and where/how-fast options): the
    // rest, the optimizer and its schedule included, comes from the checkpoint.
    let out = luna_e2e::train::train(&[
        "--cache".as_ref(),
        cache.as_os_str(),
        "--threads".as_ref(),
        "1".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--epochs".as_ref(),
        "2".as_ref(),
        "--resume".as_ref(),
        ckpt_b.join("model.safetensors").as_os_str(),
    ]);
    assert!(out.contains("resuming after epoch 1"), "{out}");

    let ckpt_a = luna_e2e::train::find_dir(&runs_a.join("p2ch12"), "-cls-resume");
    let lines_a = luna_e2e::train::metrics_lines(&ckpt_a.join("metrics.jsonl"));
    let lines_b = luna_e2e::train::metrics_lines(&ckpt_b.join("metrics.jsonl"));
    assert_eq!(lines_a.len(), 4);
    assert_eq!(
        lines_a, lines_b,
        "{settings:?}: metrics differ after resume"
    );
    assert_eq!(lines_b[3]["epoch"], 2);
    assert_eq!(lines_b[3]["samples_seen"], 24);

    let model_a = std::fs::read(ckpt_a.join("model.safetensors")).unwrap();
    let model_b = std::fs::read(ckpt_b.join("model.safetensors")).unwrap();
    assert!(
        model_a == model_b,
        "{settings:?}: weights differ after resume"
    );
    // The optimizer's state too; the files' headers differ (they record
    // the run's folder), their tensor data must not.
    let state_a = safetensors_data(&ckpt_a.join("trainer.safetensors"));
    let state_b = safetensors_data(&ckpt_b.join("trainer.safetensors"));
    assert!(
        !state_a.is_empty(),
        "{settings:?}: no optimizer state saved"
    );
    assert!(
        state_a == state_b,
        "{settings:?}: optimizer state differs after resume"
    );

    // The resumed run appended to the same TensorBoard directories.
    let trn_b = luna_e2e::train::find_dir(&prefix_b, "-trn_cls-resume");
    let event_files = std::fs::read_dir(trn_b).unwrap().count();
    assert_eq!(event_files, 2);
    lines_a
}

/// The tensor bytes of a safetensors file: what follows its 8-byte header
/// length and the JSON header.
fn safetensors_data(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

/// The "lr" of each training line, in epoch order.
fn logged_rates(lines: &[Value]) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l["phase"] == "trn")
        .map(|l| l["lr"].as_f64().expect("training lines log the lr"))
        .collect()
}

fn assert_rates(lines: &[Value], expected: &[f64]) {
    let got = logged_rates(lines);
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= 1e-12 * e,
            "logged {got:?}, schedule {expected:?}"
        );
    }
}

#[test]
fn resuming_sgd_reproduces_the_uninterrupted_run() {
    let lines = assert_resume_reproduces_the_uninterrupted_run(&[]);
    assert_rates(&lines, &[0.001, 0.001]);
}

#[test]
fn resuming_adam_with_a_warm_cosine_reproduces_the_uninterrupted_run() {
    let lines = assert_resume_reproduces_the_uninterrupted_run(&[
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--weight-decay",
        "0.01",
        "--lr-schedule",
        "cosine",
        "--lr-schedule-epochs",
        "2",
        "--warmup-samples",
        "8",
    ]);
    // Warm-up lasts 2 steps, over by each epoch's last step (steps 2 and 5).
    let cosine = |step: f64| {
        0.002 * (1.0 + (std::f64::consts::PI * step / (STEPS_PER_EPOCH * EPOCHS)).cos()) / 2.0
    };
    assert_rates(&lines, &[cosine(2.0), cosine(5.0)]);
}

#[test]
fn resuming_adamw_with_onecycle_reproduces_the_uninterrupted_run() {
    let lines = assert_resume_reproduces_the_uninterrupted_run(&[
        "--optimizer",
        "adamw",
        "--lr",
        "0.003",
        "--weight-decay",
        "0.05",
        "--lr-schedule",
        "onecycle",
        "--lr-schedule-epochs",
        "2",
    ]);
    // OneCycleLR over 6 steps: up from lr/25 to lr by step 0.3·6 − 1 = 0.8,
    // then a half cosine down to lr/25/1e4 at step 5 (epoch 2's last).
    let (peak, floor) = (0.003, 0.003 / 25.0 / 1e4);
    let falling = |step: f64| {
        let pct = (step - 0.8) / (5.0 - 0.8);
        floor + (peak - floor) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
    };
    assert_rates(&lines, &[falling(2.0), floor]);
}

#[test]
fn resuming_rmsprop_with_step_decay_reproduces_the_uninterrupted_run() {
    let lines = assert_resume_reproduces_the_uninterrupted_run(&[
        "--optimizer",
        "rmsprop",
        "--lr",
        "0.0005",
        "--momentum",
        "0.5",
        "--lr-schedule",
        "step",
        "--lr-step-epochs",
        "1",
        "--lr-gamma",
        "0.5",
    ]);
    assert_rates(&lines, &[0.0005, 0.0005 * 0.5]);
}
