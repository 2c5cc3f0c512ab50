//! The run configuration end to end: a run's config.toml repeats it, an old
//! checkpoint (before the typed configuration) still resumes exactly, eval
//! on a run's checkpoint reproduces its last validation line, and bad
//! settings fail with one clear line before any work starts.

use std::path::{Path, PathBuf};

use luna_e2e::prepcache::{s, synthetic_cache};
use luna_e2e::train::{find_dir, metrics_lines, train_output};

fn train_ok(args: &[&str]) -> String {
    let (ok, text) = train_output(args);
    assert!(ok, "train {args:?} failed:\n{text}");
    text
}

/// A tiny seeded CPU run; returns its checkpoint folder.
fn tiny_run(cache: &Path, runs: &Path, epochs: &str) -> PathBuf {
    let args = [
        "--cache",
        s(cache),
        "--runs",
        s(runs),
        "--device",
        "cpu",
        "--threads",
        "2",
        "--epochs",
        epochs,
        "--batch-size",
        "8",
        "--epoch-samples",
        "24",
        "--momentum",
        "0.9",
        "--seed",
        "21",
        "--balanced=2",
        "--augment-flip",
        "--augment-noise",
        "cfg",
    ];
    train_ok(&args);
    find_dir(&runs.join("p2ch12"), "-cls-cfg")
}

#[test]
fn a_runs_config_toml_repeats_it_and_eval_reproduces_its_last_validation_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 8);
    let first = tiny_run(&cache, &tmp.path().join("runs_a"), "2");
    let config = first.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    for needle in ["version = 1", "[optimizer]", "momentum = 0.9", "seed = 21"] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }

    let runs_b = tmp.path().join("runs_b");
    train_ok(&["--config", s(&config), "--runs", s(&runs_b)]);
    let again = find_dir(&runs_b.join("p2ch12"), "-cls-cfg");
    let (a, b) = (
        metrics_lines(&first.join("metrics.jsonl")),
        metrics_lines(&again.join("metrics.jsonl")),
    );
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "the same config.toml gave another run");

    // The run validated on its whole validation split, with P(nodule) > 0.5
    // as the rule; eval on its checkpoint must count exactly the same.
    let out = tmp.path().join("eval");
    train_ok(&[
        "eval",
        "--cache",
        s(&cache),
        "--checkpoint",
        s(&first),
        "--split",
        "val",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--threads",
        "2",
        "--out",
        s(&out),
    ]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
    let last_val = &a[3];
    assert_eq!(last_val["phase"], "val");
    for key in [
        "tp",
        "fp",
        "tn",
        "fn",
        "precision",
        "recall",
        "f1",
        "samples",
    ] {
        assert_eq!(
            report["at_half"][key], last_val[key],
            "{key}: eval {} vs the run's last validation line {}",
            report["at_half"], last_val
        );
    }
}

/// The fixture's folder name, as the run that wrote it named it.
const FIXTURE_RUN: &str = "2026-12-04_22.37.00-cls-fixture";

#[test]
fn a_checkpoint_from_before_the_typed_config_resumes_exactly() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/fixtures/checkpoint-v1");
    let tmp = tempfile::tempdir().unwrap();
    // The fixture's own data.
    let cache = luna_e2e::prepcache::fixed_cache(&tmp.path().join("cache"));
    let run = tmp.path().join("runs/p2ch12").join(FIXTURE_RUN);
    std::fs::create_dir_all(&run).unwrap();
    for file in ["model.safetensors", "trainer.safetensors", "metrics.jsonl"] {
        std::fs::copy(fixture.join(file), run.join(file)).unwrap();
    }
    let out = train_ok(&["--resume", s(&run), "--cache", s(&cache), "--epochs", "2"]);
    assert!(out.contains("resuming after epoch 1"), "{out}");
    let mut resumed = metrics_lines(&run.join("metrics.jsonl"));
    // Keys added since the fixture was made: present on the resumed
    // epoch's lines, and left out of the comparison.
    for line in &mut resumed {
        let added: &[&str] = match line["phase"].as_str() {
            Some("trn") => &["lr", "balance_ratio"],
            _ => &["auc"],
        };
        let fields = line.as_object_mut().unwrap();
        for key in added {
            let value = fields.remove(*key);
            assert_eq!(
                value.is_some(),
                fields["epoch"] == 2,
                "{key} on the resumed epoch's line only"
            );
        }
    }
    let straight = metrics_lines(&fixture.join("metrics-2-epochs.jsonl"));
    assert_eq!(
        resumed, straight,
        "resuming the old checkpoint changed the run"
    );
    // The migrated settings are now written down in the new form.
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for needle in [
        "depth = 2",
        "noise = 25.0",
        "flip = true",
        "balanced = 1",
        "seed = 3",
    ] {
        assert!(config.contains(needle), "{needle:?} not in\n{config}");
    }
}

/// Writes the fixed cache to `$LUNA_FIXED_CACHE` (for remaking the fixture
/// with an older `train`; see the fixture's README).
#[test]
#[ignore]
fn write_the_fixed_cache() {
    let dir = std::env::var_os("LUNA_FIXED_CACHE").expect("set LUNA_FIXED_CACHE");
    luna_e2e::prepcache::fixed_cache(Path::new(&dir));
}

#[test]
fn bad_settings_fail_before_any_work_with_the_flag_or_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 2);
    let runs = tmp.path().join("runs");
    let fails = |extra: &[&str], needle: &str| {
        let mut args = vec!["--runs", s(&runs), "--device", "cpu"];
        if !extra.contains(&"--cache") {
            args.extend_from_slice(&["--cache", s(&cache)]);
        }
        args.extend_from_slice(extra);
        let (ok, text) = train_output(&args);
        assert!(!ok, "{extra:?} should fail:\n{text}");
        assert!(text.contains(needle), "{extra:?}: no {needle:?} in\n{text}");
        assert!(!text.contains("panicked"), "{text}");
    };
    fails(&["--batch-size", "0"], "--batch-size");
    fails(&["--num-workers", "5000"], "--num-workers");
    fails(&["--lr=-1"], "--lr");
    fails(&["--epoch-samples", "0"], "--epoch-samples");
    fails(&["--val-stride", "1"], "--val-stride");
    // Chapter 12's experiment flags.
    fails(&["--optimizer", "lbfgs"], "--optimizer");
    fails(&["--betas", "0.9"], "--betas");
    fails(&["--optimizer", "adam", "--betas", "0.9,1.5"], "--betas");
    fails(
        &["--balanced=1", "--balanced-schedule", "1:1,x:2"],
        "--balanced-schedule",
    );
    fails(&["--balanced-schedule", "1:1,3:2"], "--balanced");
    fails(&["--mixup-positives"], "--mixup");
    fails(&["--augment-noise=-5"], "--augment-noise");
    fails(&["--augment-flip=1.5"], "--augment-flip");
    fails(&["--augment-rotate=200"], "--augment-rotate");
    fails(&["--patience", "2"], "--select");
    fails(&["--select", "accuracy"], "--select");
    fails(
        &["--input-norm", "fixed", "--input-scale", "0"],
        "--input-scale",
    );
    fails(&["--nesterov", "--optimizer", "adam"], "--nesterov");
    fails(&["--tb-histograms-every", "0"], "--tb-histograms-every");
    let not_a_cache = tmp.path().join("empty");
    std::fs::create_dir_all(&not_a_cache).unwrap();
    fails(&["--cache", s(&not_a_cache)], "not a cache");

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "version = 1\n[optimizer]\nlearning_rate = 0.1\n").unwrap();
    fails(&["--config", s(&bad)], "bad.toml");
    assert!(!runs.exists(), "a refused run must not create its folder");

    // --resume keeps the run's settings: changing one is an error, not ignored.
    let run = tiny_run(&cache, &runs, "1");
    let (ok, text) = train_output(&["--resume", s(&run), "--lr", "0.5"]);
    assert!(!ok && text.contains("--resume continues a run"), "{text}");
}
