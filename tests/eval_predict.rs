//! `train eval` and `train predict` on a checkpoint from a tiny one-epoch run.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use shared::cache::CacheReader;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Trains one tiny epoch on the CPU with `extra` flags; returns the run's checkpoint dir.
fn tiny_run(cache: &Path, runs: &Path, comment: &str, extra: &[&str]) -> PathBuf {
    let mut args: Vec<OsString> =
        vec!["--cache".into(), cache.into(), "--runs".into(), runs.into()];
    args.extend(os(&[
        "--device",
        "cpu",
        "--threads",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--epoch-samples",
        "16",
        "--val-samples",
        "8",
        "--momentum",
        "0.9",
        "--seed",
        "3",
        "--balanced=1",
    ]));
    args.extend(os(extra));
    args.push(comment.into());
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    luna_e2e::train::train(&refs);
    luna_e2e::train::find_dir(&runs.join("p2ch12"), &format!("-cls-{comment}"))
}

fn score_args(cache: &Path, ckpt: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--cache".into(),
        cache.into(),
        "--checkpoint".into(),
        ckpt.into(),
    ];
    args.extend(os(&[
        "--device",
        "cpu",
        "--threads",
        "2",
        "--batch-size",
        "16",
    ]));
    args
}

fn run_train(sub: &str, mut args: Vec<OsString>, extra: &[&OsStr]) -> String {
    args.insert(0, sub.into());
    args.extend(extra.iter().map(|s| s.to_os_string()));
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    luna_e2e::train::train(&refs)
}

fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn eval_writes_report_and_plots_and_predict_matches_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 2, 11);
    let ckpt = tiny_run(&cache, &tmp.path().join("runs"), "evaltest", &[]);
    let reader = CacheReader::open(&cache).unwrap();
    let n = reader.len();
    let n_val = n.div_ceil(10);

    // Default split (val) and output folder (the checkpoint's).
    let out = run_train("eval", score_args(&cache, &ckpt), &[]);
    for needle in ["ROC AUC", "average precision", "CPM", "FPs/scan", "E1 val"] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }
    let report = read_json(&ckpt.join("eval.json"));
    assert_eq!(report["candidates"], n_val);
    for field in [
        "positives",
        "negatives",
        "roc_auc",
        "average_precision",
        "at_half",
        "pr_curve",
        "histogram",
    ] {
        assert!(
            report.get(field).is_some(),
            "eval.json lacks {field}: {report}"
        );
    }
    let detection = &report["detection"];
    assert!(detection["nodules_from"].is_string(), "{detection}");
    if let Some(score) = detection["score"].as_object() {
        assert_eq!(score["sensitivities"].as_object().unwrap().len(), 7);
        assert!(score["cpm"].is_number());
    } else {
        assert!(detection["not_scored"].is_string(), "{detection}");
    }
    let pngs: Vec<PathBuf> = std::fs::read_dir(&ckpt)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert!(pngs.len() >= 3, "plots: {pngs:?}");
    for png in &pngs {
        let bytes = std::fs::read(png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
    }

    // --split changes what is scored (train is all minus val, the sampler's
    // split, tested in score.rs); --out moves the report; the weights file
    // alone is enough.
    let dir = tmp.path().join("eval-all");
    std::fs::copy(
        ckpt.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    run_train(
        "eval",
        score_args(&cache, &tmp.path().join("model.safetensors")),
        &[
            "--split".as_ref(),
            "all".as_ref(),
            "--out".as_ref(),
            dir.as_os_str(),
        ],
    );
    assert_eq!(read_json(&dir.join("eval.json"))["candidates"], n);

    // predict: one row per validation candidate, in cache order, with eval's probabilities.
    let csv_path = tmp.path().join("sub/predictions.csv");
    run_train(
        "predict",
        score_args(&cache, &ckpt),
        &[
            "--split".as_ref(),
            "val".as_ref(),
            "--out".as_ref(),
            csv_path.as_os_str(),
        ],
    );
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("seriesuid,coordX,coordY,coordZ,probability")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), n_val);
    assert!(!csv_path.with_extension("csv.tmp").exists());

    // The same model in batches of 5 instead of 16: the same probabilities
    // up to float reassociation.
    let small_batches = tmp.path().join("sub/predictions-b5.csv");
    let mut args = score_args(&cache, &ckpt);
    let at = args.iter().position(|a| a == "--batch-size").unwrap();
    args[at + 1] = "5".into();
    args.extend(os(&["--num-workers", "1", "--split", "val"]));
    args.push("--out".into());
    args.push(small_batches.clone().into());
    run_train("predict", args, &[]);
    let again = std::fs::read_to_string(&small_batches).unwrap();
    let again: Vec<f32> = again
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(again.len(), n_val);
    for (k, (row, &p5)) in rows.iter().zip(&again).enumerate() {
        let entry = &reader.entries()[k * 10];
        assert_eq!(row.len(), 5, "{row:?}");
        assert_eq!(row[0], reader.series_uid(entry.series));
        let xyz: Vec<f64> = row[1..4].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(xyz, entry.center_xyz.to_vec());
        let p: f32 = row[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{p}");
        assert!((p - p5).abs() < 1e-5, "row {k}: {p} vs {p5}");
    }
}

#[test]
fn a_variant_checkpoint_loads_in_eval_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 2, 12);
    let ckpt = tiny_run(
        &cache,
        &tmp.path().join("runs"),
        "variant",
        &[
            "--width",
            "2",
            "--depth",
            "3",
            "--dropout",
            "0.25",
            "--block-batchnorm",
            "--residual",
            "--weight-decay",
            "0.0001",
        ],
    );
    let meta = luna_e2e::python::run_python(
        "import json,sys\nfrom safetensors import safe_open\n\
         f=safe_open(sys.argv[1],'np')\n\
         print(json.dumps({'meta':f.metadata(),'keys':sorted(f.keys())}))",
        &[ckpt.join("model.safetensors").as_os_str()],
    );
    let arch: serde_json::Value =
        serde_json::from_str(meta["meta"]["luna_architecture"].as_str().unwrap()).unwrap();
    assert_eq!(arch["width"], 2);
    assert_eq!(arch["depth"], 3);
    assert_eq!(arch["residual"], true);
    let keys = meta["keys"].as_array().unwrap();
    assert!(
        keys.iter().any(|k| k == "block3.shortcut.weight"),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k == "block2.batchnorm1.num_batches_tracked"),
        "{keys:?}"
    );
    assert!(!keys
        .iter()
        .any(|k| k.as_str().unwrap().starts_with("block4")));

    let out = run_train("eval", score_args(&cache, &ckpt), &[]);
    assert!(out.contains("CPM"), "{out}");
    assert!(ckpt.join("eval.json").is_file());
    let csv = tmp.path().join("p.csv");
    run_train(
        "predict",
        score_args(&cache, &ckpt),
        &[
            "--split".as_ref(),
            "val".as_ref(),
            "--out".as_ref(),
            csv.as_os_str(),
        ],
    );
    let n_val = CacheReader::open(&cache).unwrap().len().div_ceil(10);
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().count(),
        n_val + 1
    );

    // Resuming rebuilds the variant from the saved settings.
    let out = luna_e2e::train::train(&[
        "--cache".as_ref(),
        cache.as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--threads".as_ref(),
        "2".as_ref(),
        "--epochs".as_ref(),
        "2".as_ref(),
        "--resume".as_ref(),
        ckpt.as_os_str(),
    ]);
    assert!(out.contains("resuming after epoch 1"), "{out}");
    assert!(out.contains("width: 2"), "{out}");
}

#[test]
fn eval_of_a_missing_checkpoint_says_which_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(luna_e2e::train::bin())
        .args(["eval", "--cache"])
        .arg(tmp.path())
        .args(["--checkpoint"])
        .arg(tmp.path().join("nope"))
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("Error"), "{err}");
}

#[test]
fn a_series_split_validates_on_whole_scans_and_eval_says_when_its_split_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 4, 11);
    let by_series = ["--split-by", "series", "--val-stride", "2"];
    let ckpt = tiny_run(&cache, &tmp.path().join("runs"), "byseries", &by_series);
    let reader = CacheReader::open(&cache).unwrap();
    // Sorted uids, every 2nd from the first: the validation scans, whole.
    let mut uids = reader.series_uids().to_vec();
    uids.sort();
    let val_uids: std::collections::BTreeSet<&str> =
        uids.iter().step_by(2).map(String::as_str).collect();
    let val_count = reader
        .entries()
        .iter()
        .filter(|e| val_uids.contains(reader.series_uid(e.series)))
        .count();

    let csv = tmp.path().join("val.csv");
    let extra: Vec<&OsStr> = by_series.iter().map(OsStr::new).collect();
    let mut predict = extra.clone();
    predict.extend([OsStr::new("--split"), OsStr::new("val")]);
    predict.extend([OsStr::new("--out"), csv.as_os_str()]);
    run_train("predict", score_args(&cache, &ckpt), &predict);
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        rows.len(),
        val_count,
        "every candidate of the validation scans"
    );
    let seen: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(seen, val_uids);

    // eval on the run's own split scores whole scans and says nothing more;
    // on the default candidate split it names both differences.
    let same = run_train("eval", score_args(&cache, &ckpt), &extra);
    assert!(
        !same.contains("FROC is partial") && !same.contains("not the run's"),
        "{same}"
    );
    let other = run_train("eval", score_args(&cache, &ckpt), &[]);
    assert!(other.contains("the FROC is partial"), "{other}");
    assert!(
        other.contains("trained with --split-by series --val-stride 2"),
        "{other}"
    );
}
