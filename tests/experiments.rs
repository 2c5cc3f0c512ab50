//! Chapter 12's experiment settings in one real run: a weighted balanced
//! sampler on a ratio schedule, augmentation magnitudes, mixup of positives,
//! a fixed input map, best-epoch selection with patience; then `eval` on the
//! run folder picks the best epoch.

use luna_e2e::prepcache::{s, synthetic_cache};
use luna_e2e::train::{find_dir, metrics_lines, train, train_output};

#[test]
fn an_experiment_run_logs_its_schedule_and_keeps_its_best_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 3, 5);
    let runs = tmp.path().join("runs");
    let out = train(
        &[
            "--cache",
            s(&cache),
            "--runs",
            s(&runs),
            "--device",
            "cpu",
            "--threads",
            "2",
            "--epochs",
            "4",
            "--batch-size",
            "4",
            "--epoch-samples",
            "16",
            "--val-samples",
            "12",
            "--seed",
            "5",
            "--balanced=1",
            "--balanced-sampler",
            "weighted",
            "--balanced-schedule",
            "2:3",
            "--augment-noise=10",
            "--augment-rotate=30",
            "--augment-flip",
            "--mixup",
            "0.4",
            "--mixup-positives",
            "--input-norm",
            "fixed",
            "--select",
            "loss",
            "--patience",
            "1",
            "experiment",
        ]
        .map(std::ffi::OsStr::new),
    );
    let run = find_dir(&runs.join("p2ch12"), "-cls-experiment");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for needle in [
        "sampler = \"weighted\"",
        "balanced_schedule = \"2:3\"",
        "noise = 10.0",
        "rotate_degrees = 30.0",
        "flip_probability = 0.5",
        "mixup_alpha = 0.4",
        "mixup_positives = true",
        "input_norm = \"fixed\"",
        "select = \"loss\"",
        "patience = 1",
    ] {
        assert!(config.contains(needle), "{needle:?} not in\n{config}");
    }
    assert!(out.contains("mixup α=0.4 (positives)"), "{out}");

    let lines = metrics_lines(&run.join("metrics.jsonl"));
    let trn: Vec<_> = lines.iter().filter(|l| l["phase"] == "trn").collect();
    let val: Vec<_> = lines.iter().filter(|l| l["phase"] == "val").collect();
    assert_eq!(trn[0]["balance_ratio"], 1, "{}", trn[0]);
    for line in &trn[1..] {
        assert_eq!(line["balance_ratio"], 3, "{line}");
    }
    assert!(trn.iter().all(|l| l["lr"] == 0.001), "constant lr logged");
    assert!(val
        .iter()
        .all(|l| l["auc"].is_number() || l["auc"].is_null()));

    // The best epoch is the lowest validation loss seen; patience 1 stops
    // the run one epoch after its last improvement.
    let losses: Vec<f64> = val
        .iter()
        .map(|l| l["loss_all"].as_f64().unwrap())
        .collect();
    let best_epoch = 1 + losses
        .iter()
        .enumerate()
        .fold(0, |best, (i, &l)| if l < losses[best] { i } else { best });
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best/best.json")).unwrap())
            .unwrap();
    assert_eq!(best["epoch"], best_epoch, "{best} vs losses {losses:?}");
    assert_eq!(best["select"], "loss");
    assert_eq!(best["score"].as_f64().unwrap(), losses[best_epoch - 1]);
    let last = val.len();
    if last < 4 {
        assert!(out.contains("stopping early before epoch"), "{out}");
        assert_eq!(last, best_epoch + 1, "losses {losses:?}");
    } else {
        assert!(!out.contains("stopping early"), "{out}");
    }

    // eval on the run folder uses best/, and its loss is that epoch's.
    let (ok, text) = train_output(&[
        "eval",
        "--cache",
        s(&cache),
        "--checkpoint",
        s(&run),
        "--device",
        "cpu",
        "--val-stride",
        "10",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("using the best epoch's checkpoint")
            && text.contains(&format!("(epoch {best_epoch}, loss")),
        "{text}"
    );
    assert!(
        run.join("best/eval.json").is_file(),
        "eval writes next to the checkpoint it used"
    );
}
