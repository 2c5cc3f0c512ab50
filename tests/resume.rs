//! Two epochs straight equal one epoch plus a resumed epoch, on the CPU with a seed.

use std::ffi::OsStr;

#[test]
fn resuming_after_epoch_one_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 3, 5);
    let (runs_a, runs_b) = (tmp.path().join("runs_a"), tmp.path().join("runs_b"));
    let common_args = |runs: &std::path::Path, epochs: &str| -> Vec<std::ffi::OsString> {
        [
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
        .collect()
    };

    let a = common_args(&runs_a, "2");
    luna_e2e::train::train(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
    let b = common_args(&runs_b, "1");
    luna_e2e::train::train(&b.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());

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
    // Resume with only the epoch count (and where/how-fast options): the rest comes from the checkpoint.
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
    assert_eq!(lines_a, lines_b, "metrics differ after resume");
    assert_eq!(lines_b[3]["epoch"], 2);
    assert_eq!(lines_b[3]["samples_seen"], 24);

    let model_a = std::fs::read(ckpt_a.join("model.safetensors")).unwrap();
    let model_b = std::fs::read(ckpt_b.join("model.safetensors")).unwrap();
    assert!(model_a == model_b, "weights differ after resume");

    // The resumed run appended to the same TensorBoard directories.
    let trn_b = luna_e2e::train::find_dir(&prefix_b, "-trn_cls-resume");
    let event_files = std::fs::read_dir(trn_b).unwrap().count();
    assert_eq!(event_files, 2);
}
