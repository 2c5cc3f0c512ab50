//! `train score` on foreign submissions (the official script's own outputs
//! are the fixtures), and `train eval` scoring against annotations.csv.

use std::path::{Path, PathBuf};

use luna_e2e::prepcache::{s, synth};
use luna_e2e::train::train_output;

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../train/tests/fixtures/luna16")
        .join(case)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn score_reproduces_the_official_script_and_writes_its_files() {
    for case in [
        "excluded_hits",
        "double_hits",
        "cap_ties",
        "scan_without_marks",
    ] {
        let dir = fixture(case);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let (ok, text) = train_output(&[
            "score",
            "--predictions",
            s(&dir.join("submission.csv")),
            "--annotations",
            s(&dir.join("annotations.csv")),
            "--annotations-excluded",
            s(&dir.join("annotations_excluded.csv")),
            "--seriesuids",
            s(&dir.join("seriesuids.csv")),
            "--bootstrap",
            "50",
            "--out",
            s(&out),
        ]);
        assert!(ok, "{case}: {text}");
        assert!(text.contains("CPM"), "{text}");
        let got = read_json(&out.join("score.json"));
        let want = read_json(&dir.join("expected.json"));
        let (g, w) = (got["cpm"].as_f64().unwrap(), want["cpm"].as_f64().unwrap());
        assert!((g - w).abs() < 1e-6, "{case}: CPM {g} vs official {w}");
        for (rate, value) in want["sensitivities"].as_object().unwrap() {
            let g = got["sensitivities"][rate].as_f64().unwrap();
            assert!(
                (g - value.as_f64().unwrap()).abs() < 1e-6,
                "{case} at {rate}"
            );
        }
        assert!(got["bootstrap"]["sensitivities"]["1"]["lower"].is_number());
        let cad = std::fs::read_to_string(out.join("CADAnalysis.txt")).unwrap();
        let official = std::fs::read_to_string(dir.join("CADAnalysis.txt")).unwrap();
        assert_eq!(cad, official, "{case}: CADAnalysis.txt differs");
        let png = std::fs::read(out.join("froc.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}

#[test]
fn bad_submissions_name_the_file_and_line() {
    let dir = fixture("double_hits");
    let tmp = tempfile::tempdir().unwrap();
    let score = |submission: &Path| {
        train_output(&[
            "score",
            "--predictions",
            s(submission),
            "--annotations",
            s(&dir.join("annotations.csv")),
            "--bootstrap",
            "0",
        ])
    };
    let missing_column = tmp.path().join("no-prob.csv");
    std::fs::write(&missing_column, "seriesuid,coordX,coordY,coordZ\na,1,2,3\n").unwrap();
    let (ok, text) = score(&missing_column);
    assert!(
        !ok && text.contains("no-prob.csv") && text.contains("probability"),
        "{text}"
    );
    let nan = tmp.path().join("nan.csv");
    std::fs::write(
        &nan,
        "seriesuid,coordX,coordY,coordZ,probability\na,1,2,3,0.5\nb,1,2,3,nan\n",
    )
    .unwrap();
    let (ok, text) = score(&nan);
    assert!(
        !ok && text.contains("nan.csv") && text.contains("line 3"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let (ok, text) = score(&empty);
    assert!(!ok && text.contains("empty.csv"), "{text}");
    // A header alone is a failed export, not a CPM of 0 (as the README says).
    let header_only = tmp.path().join("header-only.csv");
    std::fs::write(&header_only, "seriesuid,coordX,coordY,coordZ,probability\n").unwrap();
    let (ok, text) = score(&header_only);
    assert!(
        !ok && text.contains("header-only.csv") && text.contains("no marks"),
        "{text}"
    );
}

#[test]
fn eval_scores_against_annotations_csv_and_names_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2, 9);
    let cache = tmp.path().join("cache");
    luna_e2e::prepcache::build(&data, &cache, &[]);
    let runs = tmp.path().join("runs");
    let (ok, text) = train_output(&[
        "--cache",
        s(&cache),
        "--runs",
        s(&runs),
        "--device",
        "cpu",
        "--threads",
        "2",
        "--epochs",
        "1",
        "--epoch-samples",
        "8",
        "--val-samples",
        "8",
        "--batch-size",
        "8",
        "--balanced",
        "--seed",
        "1",
        "ann",
    ]);
    assert!(ok, "{text}");
    let ckpt = luna_e2e::train::find_dir(&runs.join("p2ch12"), "-cls-ann");
    let annotations = data.join("annotations.csv");
    let out = tmp.path().join("eval");
    let (ok, text) = train_output(&[
        "eval",
        "--cache",
        s(&cache),
        "--checkpoint",
        s(&ckpt),
        "--split",
        "all",
        "--device",
        "cpu",
        "--annotations",
        s(&annotations),
        "--out",
        s(&out),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("FROC nodules from {}", annotations.display())),
        "{text}"
    );
    let report = read_json(&out.join("eval.json"));
    let rows = std::fs::read_to_string(&annotations)
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(
        report["detection"]["score"]["nodules"], rows,
        "{}",
        report["detection"]
    );

    // Without annotations the stand-in is used and said to be one.
    let (ok, text) = train_output(&[
        "eval",
        "--cache",
        s(&cache),
        "--checkpoint",
        s(&ckpt),
        "--device",
        "cpu",
        "--out",
        s(&out),
    ]);
    assert!(ok && text.contains("not the challenge's figure"), "{text}");
}
