//! `make demo`'s runs learn. The classifier: the same data (`synth
//! --series 40 --seed 7`) and the same run configuration
//! (examples/demo.toml) reach validation ROC AUC >= 0.90 on a split with at
//! least 20 positives. About 4 minutes on two cores with bf16 (longer on a
//! CPU without it, which runs fp32). The segmentation model: below.

use std::path::Path;

const SERIES: usize = 40;
const SEED: u64 = 7;

#[test]
fn the_demo_run_reaches_validation_auc_0_90() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), SERIES, SEED);
    let annotations = tmp.path().join("data/annotations.csv");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo.toml");
    let runs = tmp.path().join("runs");
    let out = luna_e2e::train::train(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--cache".as_ref(),
        cache.as_os_str(),
        "--runs".as_ref(),
        runs.as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--threads".as_ref(),
        "2".as_ref(),
    ]);
    println!("{out}");
    let prefix = runs.join("p2ch12");
    let run_dir = luna_e2e::train::find_dir(&prefix, "-cls-demo");
    let lines = luna_e2e::train::metrics_lines(&run_dir.join("metrics.jsonl"));
    assert_eq!(lines.len(), 12, "six epochs of train + val lines");
    // Training itself separates the classes by then.
    let trn = &lines[10];
    assert!(trn["correct_all"].as_f64().unwrap() > 75.0, "{trn}");

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
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval.json")).unwrap()).unwrap();
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
}

/// `make demo`'s segmentation run learns: on the same data, `prepcache seg`
/// then `train seg --config examples/demo-seg.toml` reaches a per-pixel
/// recall >= 0.8 on whole slices of the held-out validation series (the
/// book's chapter 13 goal is recall: the classifier prunes the false
/// positives), while finding far fewer false positives than pixels it
/// leaves alone. About a minute on two cores with bf16.
#[test]
fn the_demo_segmentation_run_reaches_validation_recall_0_8() {
    let tmp = tempfile::tempdir().unwrap();
    let data = luna_e2e::prepcache::synth(tmp.path(), SERIES, SEED);
    let cache = tmp.path().join("seg");
    luna_e2e::prepcache::ok(&[
        "seg",
        "--data",
        luna_e2e::prepcache::s(&data),
        "--out",
        luna_e2e::prepcache::s(&cache),
    ]);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-seg.toml");
    let runs = tmp.path().join("runs");
    let out = luna_e2e::train::train(&[
        "seg".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--cache".as_ref(),
        cache.as_os_str(),
        "--runs".as_ref(),
        runs.as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--threads".as_ref(),
        "2".as_ref(),
    ]);
    println!("{out}");
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
}
