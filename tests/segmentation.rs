//! Chapter 13 end to end: `prepcache seg` writes the segmentation cache
//! from synthetic scans, `train seg` trains the U-Net on it with pixel
//! metrics, validates at the book's cadence, draws its validation slices
//! into TensorBoard, resumes, and refuses a classifier cache in one line.

use std::ffi::OsStr;
use std::path::Path;

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
    let run = find_dir(&runs.join("p2ch13"), "-seg-tiny");
    let lines = metrics_lines(&run.join("metrics.jsonl"));
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Per pixel: 32 training windows of 64×64.
    let trn = &lines[0];
    let pixels = trn["positives"].as_u64().unwrap() + trn["negatives"].as_u64().unwrap();
    assert_eq!(pixels, 32 * 64 * 64, "{trn}");
    assert!(trn["loss_all"].as_f64().unwrap() > 0.0);
    let events = events_file(&runs.join("p2ch13"), "-val_seg-tiny");
    for tag in ["val/0_prediction_0", "val/0_label_0", "val/1_prediction_5"] {
        assert!(contains(&events, tag.as_bytes()), "no image {tag}");
    }
    assert!(contains(&events, b"\x89PNG"));

    let log = train(
        &[
            "seg",
            "--resume",
            s(&run),
            "--epochs",
            "3",
            "--device",
            "cpu",
        ]
        .map(OsStr::new),
    );
    assert!(log.contains("resuming after epoch 1"), "{log}");
    // The book's cadence (epoch 1, every 5th) and the last epoch: epoch 2
    // trains without validating.
    let phases: Vec<String> = metrics_lines(&run.join("metrics.jsonl"))
        .iter()
        .map(|l| format!("{}{}", l["phase"].as_str().unwrap(), l["epoch"]))
        .collect();
    assert_eq!(phases, ["trn1", "val1", "trn2", "trn3", "val3"]);
    // Label pictures are drawn once, at the first validation.
    let events = events_file(&runs.join("p2ch13"), "-val_seg-tiny");
    let count = |tag: &[u8]| events.windows(tag.len()).filter(|w| *w == tag).count();
    assert_eq!(count(b"val/0_prediction_0"), 2);
    assert_eq!(count(b"val/0_label_0"), 1);
}

#[test]
fn a_segmentation_sweep_trains_its_variants_with_train_seg_and_compare_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 6, 7);
    let cache = tmp.path().join("seg");
    ok(&[
        "seg",
        "--data",
        s(&data),
        "--out",
        s(&cache),
        "--val-stride",
        "3",
    ]);
    let sweep = tmp.path().join("lr.toml");
    std::fs::write(
        &sweep,
        "task = \"seg\"\n[set]\nrun.seed = 3\nrun.epochs = 1\ndata.batch_size = 8\ndata.epoch_samples = 16\ndata.num_workers = 1\n[grid]\noptimizer.lr = [0.001, 0.0001]\n",
    )
    .unwrap();
    let out = tmp.path().join("sweep");
    let log = train(
        &[
            "sweep",
            s(&sweep),
            "--cache",
            s(&cache),
            "--out",
            s(&out),
            "--threads",
            "2",
        ]
        .map(OsStr::new),
    );
    assert!(log.contains("2 runs"), "{log}");
    for lr in ["0.001", "0.0001"] {
        let group = out.join(format!("optimizer.lr={lr}/seed-3/p2ch13"));
        let run = find_dir(&group, "-seg-seg");
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        // The chapter 13 preset under the sweep's keys: Adam, the book's cadence.
        assert!(config.contains("name = \"adam\""), "{config}");
        assert!(config.contains("validate_every = 5"), "{config}");
        assert_eq!(metrics_lines(&run.join("metrics.jsonl")).len(), 2);
    }
    let compared = train(&["compare", s(&out)].map(OsStr::new));
    assert!(compared.contains("optimizer.lr"), "{compared}");
    let table = std::fs::read_to_string(out.join("compare.md")).unwrap();
    for row in [
        "| optimizer.lr=0.001 | 0.001 | 1 | 1 | f1 |",
        "| optimizer.lr=0.0001 |",
    ] {
        assert!(table.contains(row), "{table}");
    }
}

/// The bytes of the one TensorBoard events file under the folder of
/// `group` whose name holds `part`.
fn events_file(group: &Path, part: &str) -> Vec<u8> {
    let dir = find_dir(group, part);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .collect();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
