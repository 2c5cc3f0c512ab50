//! `make demo`'s pipeline learns, end to end, on the same data (`synth
//! --series 40 --seed 7`) with the same run configurations (examples/
//! demo.toml, demo-seg.toml, demo-mal.toml): the nodule classifier reaches
//! validation ROC AUC >= 0.90 on a split with at least 20 positives, the
//! U-Net a per-pixel recall >= 0.8 on whole held-out slices, the
//! malignancy model fine-tuned from the classifier trains only what it
//! should, and `train analyze` with the three finds most nodules of ten
//! scans none of them saw (`make analyze`'s `--series 10 --seed 1007`).
//! One test, because each stage needs the one before. About 7 minutes on
//! two cores with bf16 (longer on a CPU without it, which runs fp32).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;

const SERIES: usize = 40;
const SEED: u64 = 7;
/// `make analyze`'s held-out scans.
const UNSEEN_SERIES: usize = 10;
const UNSEEN_SEED: u64 = 1007;
/// What the demo's pipeline must reach on them: a guard against a broken
/// stage, not issue 24's goal (85% at 4 false positives a scan), which the
/// demo's 7-minute training misses more often than not: with bf16 on a
/// Xeon, `--centres balls` and `--flip-average` it found 32 of 39 (0.82)
/// at 0.8 false positives a scan, CPM 0.70 (`--centres thickest`: 30).
/// The bounds leave room for fp32, other CPUs' arithmetic and the spread
/// between runs (30–33 of 39 over this repository's demo runs).
const FOUND_MIN: f64 = 0.55;
const FPS_PER_SCAN_MAX: f64 = 4.0;

#[test]
fn the_demo_pipeline_learns_and_finds_nodules_in_scans_it_never_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), SERIES, SEED);
    let data = tmp.path().join("data");
    let runs = tmp.path().join("runs");
    let cls = the_classifier_learns(&cache, &data, &runs);
    let seg = the_segmentation_learns(&data, &tmp.path().join("seg"), &runs);
    let mal = the_malignancy_model_learns(&cache, &data, &runs, &cls);
    the_pipeline_finds_nodules(&tmp.path().join("unseen"), [&seg, &cls, &mal]);
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// `train` with `args` then the runs folder, on the CPU with two threads.
fn run_train(args: &[&OsStr], runs: &Path) -> String {
    let mut all = args.to_vec();
    all.extend([OsStr::new("--runs"), runs.as_os_str()]);
    all.extend(["--device", "cpu", "--threads", "2"].map(OsStr::new));
    let out = luna_e2e::train::train(&all);
    println!("{out}");
    out
}

fn the_classifier_learns(cache: &Path, data: &Path, runs: &Path) -> PathBuf {
    let config = example("demo.toml");
    let args = [
        "--config".as_ref(),
        config.as_os_str(),
        "--cache".as_ref(),
        cache.as_os_str(),
    ];
    let out = run_train(&args, runs);
    let prefix = runs.join("p2ch12");
    let run_dir = luna_e2e::train::find_dir(&prefix, "-cls-demo");
    let lines = luna_e2e::train::metrics_lines(&run_dir.join("metrics.jsonl"));
    assert_eq!(lines.len(), 18, "nine epochs of train + val lines");
    // Training itself separates the classes by then.
    let trn = &lines[16];
    assert!(trn["correct_all"].as_f64().unwrap() > 75.0, "{trn}");

    let annotations = data.join("annotations.csv");
    let eval = luna_e2e::train::train(&[
        "eval".as_ref(),
        "--cache".as_ref(),
        cache.as_os_str(),
        "--checkpoint".as_ref(),
        run_dir.as_os_str(),
        "--annotations".as_ref(),
        annotations.as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    println!("{eval}");
    let report = read_json(&run_dir.join("eval.json"));
    let positives = report["positives"].as_u64().unwrap();
    assert!(positives >= 20, "only {positives} validation positives");
    let auc = report["roc_auc"].as_f64().unwrap();
    assert!(auc >= 0.90, "validation ROC AUC {auc}\n{out}\n{eval}");

    // The run left TensorBoard events for both phases and a loadable checkpoint.
    for part in ["-trn_cls-demo", "-val_cls-demo"] {
        let dir = luna_e2e::train::find_dir(&prefix, part);
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
    }
    assert!(run_dir.join("trainer.safetensors").is_file());
    run_dir
}

/// `prepcache seg` then `train seg`: a per-pixel recall >= 0.8 on whole
/// slices of the held-out validation series (the book's chapter 13 goal is
/// recall: the classifier prunes the false positives), while finding far
/// fewer false positives than pixels it leaves alone.
fn the_segmentation_learns(data: &Path, cache: &Path, runs: &Path) -> PathBuf {
    let s = luna_e2e::prepcache::s;
    luna_e2e::prepcache::ok(&["seg", "--data", s(data), "--out", s(cache)]);
    let config = example("demo-seg.toml");
    let args = [
        "seg".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--cache".as_ref(),
        cache.as_os_str(),
    ];
    let out = run_train(&args, runs);
    let run_dir = luna_e2e::train::find_dir(&runs.join("p2ch13"), "-seg-demo");
    let lines = luna_e2e::train::metrics_lines(&run_dir.join("metrics.jsonl"));
    let last = lines.iter().rev().find(|l| l["phase"] == "val").unwrap();
    assert!(last["positives"].as_u64().unwrap() > 1000, "{last}");
    let recall = last["recall"].as_f64().unwrap();
    assert!(recall >= 0.8, "validation recall {recall}\n{out}");
    let (fp, tn) = (last["fp"].as_f64().unwrap(), last["tn"].as_f64().unwrap());
    assert!(
        fp < 0.1 * tn,
        "{fp} false positive pixels for {tn} true negatives"
    );
    assert!(run_dir.join("best/model.safetensors").is_file());
    run_dir
}

/// The malignancy run fine-tuned from the classifier: its validation holds
/// the split's nodules only, and it tells malignant from benign better than
/// chance.
fn the_malignancy_model_learns(cache: &Path, data: &Path, runs: &Path, cls: &Path) -> PathBuf {
    let config = example("demo-mal.toml");
    let csv = data.join("annotations_with_malignancy.csv");
    let args = [
        "--config".as_ref(),
        config.as_os_str(),
        "--cache".as_ref(),
        cache.as_os_str(),
        "--malignancy-csv".as_ref(),
        csv.as_os_str(),
        "--finetune".as_ref(),
        cls.as_os_str(),
    ];
    let out = run_train(&args, runs);
    let run_dir = luna_e2e::train::find_dir(&runs.join("p2ch14"), "-cls-demo");
    let lines = luna_e2e::train::metrics_lines(&run_dir.join("metrics.jsonl"));
    let val = lines.iter().rev().find(|l| l["phase"] == "val").unwrap();
    let negatives = val["negatives"].as_u64().unwrap();
    assert!(
        negatives > 0 && val["positives"].as_u64().unwrap() > 0,
        "{val}"
    );
    assert!(negatives < 40, "validation is nodules only: {val}");
    let auc = val["auc"].as_f64().unwrap();
    assert!(auc >= 0.7, "malignancy validation ROC AUC {auc}\n{out}");
    run_dir
}

/// `train analyze` over scans of another seed with the three models.
fn the_pipeline_finds_nodules(root: &Path, [seg, cls, mal]: [&Path; 3]) {
    let data = luna_e2e::prepcache::synth(root, UNSEEN_SERIES, UNSEEN_SEED);
    let out = root.join("analysis");
    let text = luna_e2e::train::train(&[
        "analyze".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--split".as_ref(),
        "all".as_ref(),
        "--seg-model".as_ref(),
        seg.as_os_str(),
        "--cls-model".as_ref(),
        cls.as_os_str(),
        "--mal-model".as_ref(),
        mal.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--centres".as_ref(),
        "balls".as_ref(),
        "--flip-average".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    println!("{text}");
    let report = read_json(&out.join("report.json"));
    let table = &report["table"];
    assert_eq!(table["rows"].as_array().unwrap().len(), 3, "{table}");
    let nodules = table["nodules"].as_f64().unwrap();
    let found = table["found"].as_f64().unwrap() / nodules;
    let fps = table["false_positives_per_scan"].as_f64().unwrap();
    assert!(nodules >= 30.0, "only {nodules} nodules: a weak test");
    assert!(
        found >= FOUND_MIN,
        "found {found:.3} of the nodules\n{text}"
    );
    assert!(
        fps <= FPS_PER_SCAN_MAX,
        "{fps} false positives per scan\n{text}"
    );
    assert!(report["froc"]["cpm"].as_f64().unwrap() > 0.0, "{text}");
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}
