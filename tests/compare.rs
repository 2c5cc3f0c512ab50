//! `train compare` on real runs: three tiny trainings (two learning rates,
//! one of them with two seeds) compared as a runs folder, plus the cases a
//! user gets wrong.

use std::path::{Path, PathBuf};

use luna_e2e::prepcache::s;
use luna_e2e::train::{find_dir, train, train_output};

/// A two-epoch CPU run of a few samples into `runs`, named `comment`.
fn tiny_run(cache: &Path, runs: &Path, comment: &str, lr: &str, seed: &str) -> PathBuf {
    train(
        &[
            "--cache",
            s(cache),
            "--runs",
            s(runs),
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--num-workers",
            "1",
            "--batch-size",
            "4",
            "--epoch-samples",
            "8",
            "--val-samples",
            "8",
            "--balanced",
            "--lr",
            lr,
            "--seed",
            seed,
            comment,
        ]
        .map(std::ffi::OsStr::new),
    );
    find_dir(&runs.join("p2ch12"), &format!("-cls-{comment}"))
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (word(16), word(20))
}

#[test]
fn compare_tabulates_real_runs_by_the_setting_that_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 3, 5);
    let runs = tmp.path().join("runs");
    let slow_1 = tiny_run(&cache, &runs, "slow1", "0.001", "1");
    let slow_2 = tiny_run(&cache, &runs, "slow2", "0.001", "2");
    let fast = tiny_run(&cache, &runs, "fast", "0.01", "1");

    // One folder argument: the report goes into it.
    let (ok, out) = train_output(&["compare", s(&runs)]);
    assert!(ok, "{out}");
    let md = std::fs::read_to_string(runs.join("compare.md")).unwrap();
    assert!(
        out.contains(&md),
        "printed table differs from compare.md:\n{out}"
    );
    let header = md.lines().find(|l| l.starts_with("| run |")).unwrap();
    assert!(header.contains("| optimizer.lr |"), "{header}");
    // The seed, the comment and where the runs went tell no runs apart.
    assert!(
        !header.contains("run.seed") && !header.contains("run.comment"),
        "{header}"
    );
    let slow_row = md
        .lines()
        .find(|l| l.starts_with("| slow1, slow2 |"))
        .unwrap_or_else(|| panic!("{md}"));
    // Two runs, two seeds, F1 and AUC as mean ± sd.
    assert!(slow_row.contains("| 0.001 | 2 | 2 | f1 |"), "{slow_row}");
    assert!(slow_row.matches('±').count() >= 8, "{slow_row}");
    let fast_row = md.lines().find(|l| l.starts_with("| fast |")).unwrap();
    assert!(fast_row.contains("| 0.01 | 1 | 1 | f1 |"), "{fast_row}");
    assert!(!fast_row.contains('±'), "{fast_row}");

    let mut reader = csv::Reader::from_path(runs.join("compare.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} in {header:?}"))
    };
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let cells = |r: &csv::StringRecord, name: &str| r[col(name)].to_owned();
    let listed: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                cells(r, "run"),
                cells(r, "seed"),
                cells(r, "optimizer.lr"),
                cells(r, "group"),
            )
        })
        .collect();
    let row = |dir: &Path, seed: &str, lr: &str| {
        let group = format!("optimizer.lr={lr}");
        (
            dir.display().to_string(),
            seed.to_owned(),
            lr.to_owned(),
            group,
        )
    };
    // One row per run, a group's runs next to each other.
    let mut expected = vec![
        row(&slow_1, "1", "0.001"),
        row(&slow_2, "2", "0.001"),
        row(&fast, "1", "0.01"),
    ];
    let groups: Vec<&String> = listed.iter().map(|r| &r.3).collect();
    assert!(
        groups[0] == groups[1] || groups[1] == groups[2],
        "{listed:?}"
    );
    let mut listed = listed;
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    for r in &rows {
        assert_eq!(cells(r, "last_epoch"), "2");
        assert_eq!(cells(r, "val_epochs"), "2");
        let best: u32 = cells(r, "best_epoch").parse().unwrap();
        assert!((1..=2).contains(&best));
        let f1: f64 = cells(r, "last_f1").parse().unwrap();
        assert!((0.0..=1.0).contains(&f1));
    }
    // The CSV's last-epoch F1 is the run's own last validation line.
    let lines = luna_e2e::train::metrics_lines(&fast.join("metrics.jsonl"));
    let last_val = lines.iter().rev().find(|l| l["phase"] == "val").unwrap();
    let fast_csv = rows.iter().find(|r| cells(r, "comment") == "fast").unwrap();
    let csv_f1: f64 = cells(fast_csv, "last_f1").parse().unwrap();
    assert_eq!(Some(csv_f1), last_val["f1"].as_f64());

    for name in ["compare_f1.png", "compare_recall.png"] {
        assert_eq!(png_size(&runs.join(name)), (800, 600), "{name}");
    }
}

#[test]
fn compare_lists_a_run_without_epochs_and_refuses_folders_without_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 3, 5);
    let runs = tmp.path().join("runs");
    let done = tiny_run(&cache, &runs, "done", "0.001", "1");
    // Started, validated nothing yet: config.toml and a training line only.
    let fresh = tmp.path().join("fresh-cls-x");
    std::fs::create_dir_all(&fresh).unwrap();
    let config = std::fs::read_to_string(done.join("config.toml")).unwrap();
    assert!(config.contains("batch_size = 4"), "{config}");
    std::fs::write(
        fresh.join("config.toml"),
        config.replace("batch_size = 4", "batch_size = 8"),
    )
    .unwrap();
    let metrics = std::fs::read_to_string(done.join("metrics.jsonl")).unwrap();
    std::fs::write(
        fresh.join("metrics.jsonl"),
        format!("{}\n", metrics.lines().next().unwrap()),
    )
    .unwrap();

    let out_dir = tmp.path().join("report");
    let (ok, out) = train_output(&["compare", s(&done), s(&fresh), "--out", s(&out_dir)]);
    assert!(ok, "{out}");
    let fresh_row = out
        .lines()
        .find(|l| l.contains("| 8 |"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(fresh_row.contains("no epochs yet"), "{fresh_row}");
    assert!(out.contains("| data.batch_size |"), "{out}");
    let csv = std::fs::read_to_string(out_dir.join("compare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let empty = tmp.path().join("no-runs-here");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    let (ok, out) = train_output(&["compare", s(&done), s(&empty)]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(s(&empty)) && out.contains("not a run folder") && out.contains("config.toml"),
        "{out}"
    );
    let (ok, out) = train_output(&["compare", s(&tmp.path().join("missing"))]);
    assert!(
        !ok && out.contains("missing") && out.contains("no such"),
        "{out}"
    );
    let (ok, out) = train_output(&["compare"]);
    assert!(!ok && out.contains("RUN_OR_FOLDER"), "{out}");
}
