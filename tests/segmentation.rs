//! Chapter 13 end to end: `prepcache seg` writes the segmentation cache
//! from synthetic scans, `train seg` trains the U-Net on it with pixel
//! metrics, resumes, and refuses a classifier cache in one line.

use std::ffi::OsStr;

use luna_e2e::prepcache::{ok, s, synth, synthetic_cache};
use luna_e2e::train::{find_dir, metrics_lines, train, train_output};

fn seg_run(cache: &str, runs: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "seg",
        "--cache",
        cache,
        "--runs",
        runs,
        "--device",
        "cpu",
        "--threads",
        "2",
        "--batch-size",
        "8",
        "--epoch-samples",
        "32",
        "--num-workers",
        "1",
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    train(&args)
}

#[test]
fn prepcache_seg_then_train_seg_trains_the_unet_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 6, 7);
    let cache = tmp.path().join("seg");
    let out = ok(&[
        "seg",
        "--data",
        s(&data),
        "--out",
        s(&cache),
        "--val-stride",
        "3",
    ]);
    assert!(
        out.contains("seg-train/") && out.contains("seg-val/"),
        "{out}"
    );
    let runs = tmp.path().join("runs");
    let log = seg_run(s(&cache), s(&runs), &["--epochs", "1", "tiny"]);
    assert!(
        log.contains("UNet") && log.contains("validating on"),
        "{log}"
    );
    let run = find_dir(&runs.join("p2ch13"), "-cls-tiny");
    let lines = metrics_lines(&run.join("metrics.jsonl"));
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Per pixel: 32 training windows of 64×64.
    let trn = &lines[0];
    let pixels = trn["positives"].as_u64().unwrap() + trn["negatives"].as_u64().unwrap();
    assert_eq!(pixels, 32 * 64 * 64, "{trn}");
    assert!(trn["loss_all"].as_f64().unwrap() > 0.0);

    let log = train(
        &[
            "seg",
            "--resume",
            s(&run),
            "--epochs",
            "2",
            "--device",
            "cpu",
        ]
        .map(OsStr::new),
    );
    assert!(log.contains("resuming after epoch 1"), "{log}");
    assert_eq!(metrics_lines(&run.join("metrics.jsonl")).len(), 4);
}

#[test]
fn train_seg_on_a_classifier_cache_says_what_to_write_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 3);
    let runs = tmp.path().join("runs");
    let (ok, out) = train_output(&[
        "seg",
        "--cache",
        s(&cache),
        "--runs",
        s(&runs),
        "--device",
        "cpu",
    ]);
    assert!(!ok, "{out}");
    let error: Vec<&str> = out.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(error.len(), 1, "{out}");
    assert!(error[0].contains("prepcache seg"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}
