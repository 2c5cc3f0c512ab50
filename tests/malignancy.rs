//! Chapter 14's malignancy classifier, fine-tuned from a nodule classifier:
//! synthetic scans → cache → a one-epoch nodule run → `--label malignancy
//! --finetune` with depth 1 → a resumed second epoch. The frozen blocks
//! must leave the run bit for bit the nodule model's, the head must move,
//! validation must be the split's nodules, and the weights must say what
//! they classify.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use luna_e2e::prepcache::synth;
use luna_e2e::safetensors;
use luna_e2e::train::{find_dir, metrics_lines, train, train_output};
use shared::cache::CacheReader;

const VAL_STRIDE: &str = "3";

/// A tiny seeded CPU run split by series (so validation scans are whole),
/// without a cap on validation.
fn run_args(cache: &Path, runs: &Path, extra: &[&OsStr]) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        vec!["--cache".into(), cache.into(), "--runs".into(), runs.into()];
    for a in [
        "--device",
        "cpu",
        "--threads",
        "2",
        "--batch-size",
        "8",
        "--epoch-samples",
        "16",
        "--seed",
        "5",
        "--balanced",
        "--split-by",
        "series",
        "--val-stride",
        VAL_STRIDE,
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|a| a.to_os_string()));
    args
}

fn refs(args: &[OsString]) -> Vec<&OsStr> {
    args.iter().map(OsString::as_os_str).collect()
}

/// The positive candidates of the validation scans (every third series).
fn validation_positives(cache: &Path) -> usize {
    let reader = CacheReader::open(cache).unwrap();
    let stride = VAL_STRIDE.parse().unwrap();
    let val = shared::luna::validation_series(reader.series_uids(), stride).unwrap();
    reader
        .entries()
        .iter()
        .filter(|e| e.is_nodule && val[e.series as usize])
        .count()
}

/// Names of the tensors that differ between two weights files; panics
/// when their tensor names differ.
fn changed(a: &safetensors::TensorFile, b: &safetensors::TensorFile) -> Vec<String> {
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>()
    );
    a.tensors
        .iter()
        .filter(|(name, bytes)| b.tensors[*name] != **bytes)
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn a_malignancy_model_fine_tuned_from_a_nodule_model_trains_only_its_head() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 12, 7);
    let cache = tmp.path().join("cache");
    luna_e2e::prepcache::build(&data, &cache, &[]);
    let runs = tmp.path().join("runs");
    let csv = data.join("annotations_with_malignancy.csv");

    let nodule_args = run_args(
        &cache,
        &runs,
        &[
            OsStr::new("--val-samples"),
            OsStr::new("8"),
            OsStr::new("nod"),
        ],
    );
    train(&refs(&nodule_args));
    let nodule_run = find_dir(&runs.join("p2ch12"), "-cls-nod");
    let nodule = safetensors::read(&nodule_run.join("model.safetensors"));
    assert_eq!(nodule.metadata["luna_label"], "nodule");

    let mal_args = run_args(
        &cache,
        &runs,
        &[
            OsStr::new("--label"),
            OsStr::new("malignancy"),
            OsStr::new("--malignancy-csv"),
            csv.as_os_str(),
            OsStr::new("--finetune"),
            nodule_run.as_os_str(),
            OsStr::new("--finetune-depth"),
            OsStr::new("1"),
            OsStr::new("--tb-prefix"),
            OsStr::new("p2ch14"),
            OsStr::new("mal"),
        ],
    );
    let out = train(&refs(&mal_args));
    assert!(
        out.contains("0 positive candidates in no annotation's box left out"),
        "{out}"
    );
    assert!(
        out.contains("training head_linear (2306 of 222220 parameters); frozen: tail_batchnorm block1 block2 block3 block4"),
        "{out}"
    );
    let mal_run = find_dir(&runs.join("p2ch14"), "-cls-mal");
    let check_weights = |when: &str| {
        let mal = safetensors::read(&mal_run.join("model.safetensors"));
        assert_eq!(mal.metadata["luna_label"], "malignancy", "{when}");
        // The step counter of each BatchNorm is the run's, not a weight.
        let moved: Vec<String> = changed(&nodule, &mal)
            .into_iter()
            .filter(|n| !n.ends_with(".num_batches_tracked"))
            .collect();
        assert_eq!(moved, ["head_linear.bias", "head_linear.weight"], "{when}");
    };
    check_weights("after epoch 1");

    let lines = metrics_lines(&mal_run.join("metrics.jsonl"));
    let phases: Vec<&str> = lines.iter().map(|l| l["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["trn", "val"]);
    let val = &lines[1];
    let nodules = validation_positives(&cache);
    assert!(nodules >= 10, "{nodules} validation nodules");
    assert_eq!(val["samples"].as_u64(), Some(nodules as u64), "{val}");
    // Both classes are there: the synthetic set is about a third malignant.
    assert!(val["positives"].as_u64().unwrap() > 0, "{val}");
    assert!(val["negatives"].as_u64().unwrap() > 0, "{val}");
    let config = std::fs::read_to_string(mal_run.join("config.toml")).unwrap();
    assert!(
        config.contains("label = \"malignancy\"") && config.contains("finetune = "),
        "{config}"
    );

    // Resumed, the run keeps its frozen blocks frozen (it never rereads
    // the nodule model).
    let resume = [
        OsStr::new("--resume"),
        mal_run.as_os_str(),
        OsStr::new("--epochs"),
        OsStr::new("2"),
    ];
    train(&resume);
    check_weights("after the resumed epoch 2");
    assert_eq!(metrics_lines(&mal_run.join("metrics.jsonl")).len(), 4);
}

#[test]
fn a_missing_model_or_csv_is_one_line_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 2);
    let cache = tmp.path().join("cache");
    luna_e2e::prepcache::build(&data, &cache, &[]);
    let runs = tmp.path().join("runs");
    let missing = tmp.path().join("no-such-run");
    let cases: [(&[&OsStr], &str); 2] = [
        (
            &[OsStr::new("--finetune"), missing.as_os_str()],
            "no-such-run: no such file or folder",
        ),
        (
            &[OsStr::new("--label"), OsStr::new("malignancy")],
            "--malignancy-csv",
        ),
    ];
    for (extra, needle) in cases {
        let (ok, text) = train_output(&run_args(&cache, &runs, extra));
        assert!(!ok, "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("Error: ") && text.contains(needle),
            "{text}"
        );
    }
    assert!(!runs.exists(), "no run folder is made");
}
