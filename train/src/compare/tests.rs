use std::path::{Path, PathBuf};

use super::*;
use crate::config::{RunConfig, Select, CONFIG_FILE};
use crate::evaluate::metrics_log::defined;
use crate::evaluate::METRICS_FILE;

/// (epoch, f1, recall, loss, auc) of one validation line.
type Val = (usize, f64, f64, f64, Option<f64>);

fn val_line(&(epoch, f1, recall, loss, auc): &Val) -> String {
    serde_json::json!({
        "epoch": epoch, "phase": "val", "samples_seen": 100 * epoch,
        "loss_all": loss, "precision": 0.5, "recall": recall,
        "f1": f1, "f2": f1 / 2.0, "f05": f1 / 4.0, "auc": auc,
    })
    .to_string()
}

/// A run folder as `train` leaves it: config.toml, and metrics.jsonl with
/// a training line before each validation line.
fn write_run(dir: &Path, edit: impl FnOnce(&mut RunConfig), vals: &[Val]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut config = RunConfig::default();
    edit(&mut config);
    std::fs::write(dir.join(CONFIG_FILE), config.to_toml()).unwrap();
    let mut text = String::new();
    for v in vals {
        let trn = serde_json::json!({"epoch": v.0, "phase": "trn", "f1": 0.99, "recall": 0.99});
        text.push_str(&format!("{trn}\n{}\n", val_line(v)));
    }
    std::fs::write(dir.join(METRICS_FILE), text).unwrap();
    dir.to_owned()
}

fn load_all(dirs: &[PathBuf]) -> Comparison {
    Comparison::new(dirs.iter().map(|d| Run::load(d).unwrap()).collect())
}

#[test]
fn flattening_names_nested_keys_and_shows_values_plainly() {
    let table: toml::Table = toml::from_str(
        "version = 1\n[optimizer]\nlr = 0.001\neps = 1e-8\nbetas = [0.9, 0.999]\nname = \"adam\"\n\
         [run]\nseed = 7\ntb_activations = true\n",
    )
    .unwrap();
    let flat = flatten(&table);
    let pairs: Vec<(&str, &str)> = flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("optimizer.betas", "[0.9, 0.999]"),
            ("optimizer.eps", "1e-8"),
            ("optimizer.lr", "0.001"),
            ("optimizer.name", "adam"),
            ("run.seed", "7"),
            ("run.tb_activations", "true"),
            ("version", "1"),
        ]
    );
}

#[test]
fn a_config_without_newer_keys_compares_as_their_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let full = write_run(&tmp.path().join("full"), |_| {}, &[]);
    // Written before [optimizer] had a name or a schedule: the same run.
    let old = write_run(&tmp.path().join("old"), |_| {}, &[]);
    let text = std::fs::read_to_string(old.join(CONFIG_FILE)).unwrap();
    let trimmed: String = text
        .lines()
        .filter(|l| !l.starts_with("name =") && !l.starts_with("schedule ="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(trimmed, text);
    std::fs::write(old.join(CONFIG_FILE), trimmed).unwrap();
    let c = load_all(&[full, old]);
    assert!(c.differing.is_empty(), "{:?}", c.differing);
    assert_eq!(c.groups.len(), 1);
}

#[test]
fn runs_differing_only_in_seed_and_places_group_together() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, lr: f64, seed: u64, vals: &[Val]| {
        let device = if seed == 1 { "cpu" } else { "auto" };
        write_run(
            &tmp.path().join(name),
            |c| {
                c.optimizer.lr = lr;
                c.run.seed = Some(seed);
                c.run.comment = name.to_owned();
                c.run.device = device.to_owned();
                c.run.threads = Some(seed as u32);
                c.data.num_workers = seed as u32;
                c.data.cache = Some(PathBuf::from(format!("/cache/{name}")));
            },
            vals,
        )
    };
    let dirs = [
        run(
            "a1",
            0.01,
            1,
            &[(1, 0.2, 0.3, 0.9, None), (2, 0.6, 0.7, 0.5, None)],
        ),
        run("b1", 0.1, 1, &[(1, 0.4, 0.5, 0.7, None)]),
        run(
            "a2",
            0.01,
            2,
            &[(1, 0.4, 0.5, 0.8, None), (2, 0.2, 0.9, 0.4, None)],
        ),
    ];
    let c = load_all(&dirs);
    assert_eq!(c.differing, ["optimizer.lr"]);
    assert_eq!(c.groups.len(), 2);
    assert_eq!(c.groups[0].values, ["0.01"]);
    assert_eq!(c.groups[0].members, [0, 2]);
    assert_eq!(c.groups[1].members, [1]);
    assert_eq!(c.seed_count(&c.groups[0]), 2);
    assert_eq!(c.group_label(&c.groups[1]), "optimizer.lr=0.1");
    assert_eq!(c.run_label(2), "optimizer.lr=0.01 seed=2");
    assert_eq!(c.run_label(1), "optimizer.lr=0.1");

    // Best by F1: epoch 2 (0.6) of a1, epoch 1 (0.4) of a2 → 0.5 ± 0.141.
    let md = table::markdown(&c);
    let lr_row = md
        .lines()
        .find(|l| l.starts_with("| a1, a2 |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(lr_row.contains("| 0.01 | 2 | 2 | f1 | 2, 1 |"), "{lr_row}");
    assert!(lr_row.contains("0.500 ± 0.141"), "{lr_row}");
    assert!(md.contains("| run | optimizer.lr | runs |"), "{md}");

    let csv = table::csv(&c).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let a2 = &rows[1];
    assert_eq!(&a2[col("comment")], "a2");
    assert_eq!(&a2[col("seed")], "2");
    assert_eq!(&a2[col("optimizer.lr")], "0.01");
    assert_eq!(&a2[col("group")], "optimizer.lr=0.01");
    assert_eq!(&a2[col("best_epoch")], "1");
    assert_eq!(&a2[col("last_recall")], "0.9");
    assert_eq!(&a2[col("best_auc")], "");
}

#[test]
fn the_best_epoch_follows_the_runs_select_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let vals: [Val; 3] = [
        (1, 0.3, 0.2, 0.50, Some(0.7)),
        (2, 0.5, 0.9, 0.40, Some(0.9)),
        (3, 0.5, 0.4, 0.45, Some(0.8)),
    ];
    let best_epoch = |select: Option<Select>, vals: &[Val]| {
        let dir = write_run(
            &tmp.path().join(format!("{select:?}")),
            |c| c.run.select = select,
            vals,
        );
        let run = Run::load(&dir).unwrap();
        run.best().map(|(by, e)| (by, e.epoch))
    };
    assert_eq!(best_epoch(None, &vals), Some((Select::F1, 2)));
    assert_eq!(
        best_epoch(Some(Select::Loss), &vals),
        Some((Select::Loss, 2))
    );
    assert_eq!(
        best_epoch(Some(Select::Recall), &vals),
        Some((Select::Recall, 2))
    );
    let losses: Vec<Val> = vals
        .iter()
        .map(|v| (v.0, v.1, v.2, 1.0 / v.0 as f64, v.4))
        .collect();
    assert_eq!(
        best_epoch(Some(Select::Loss), &losses),
        Some((Select::Loss, 3))
    );
    // AUC absent from every line (an older run): F1 decides, and says so.
    let no_auc: Vec<Val> = vals.iter().map(|v| (v.0, v.1, v.2, v.3, None)).collect();
    assert_eq!(
        best_epoch(Some(Select::Auc), &no_auc),
        Some((Select::F1, 2))
    );
    assert_eq!(best_epoch(Some(Select::Auc), &[]), None);
}

#[test]
fn metrics_lines_resumed_torn_and_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_run(&tmp.path().join("r"), |_| {}, &[(1, 0.1, 0.1, 1.0, None)]);
    let path = dir.join(METRICS_FILE);
    // A resumed epoch 1 wrote its line again; epoch 2 is being written.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&val_line(&(1, 0.3, 0.3, 1.0, None)));
    text.push('\n');
    text.push_str(r#"{"epoch":2,"phase":"val","f1""#);
    std::fs::write(&path, &text).unwrap();
    let epochs = load::read_val_epochs(&path).unwrap();
    assert_eq!(epochs.len(), 1);
    assert_eq!(epochs[0].metrics.f1, 0.3);

    text.push('\n');
    std::fs::write(&path, &text).unwrap();
    let err = load::read_val_epochs(&path).unwrap_err().to_string();
    assert!(
        err.contains(METRICS_FILE) && err.contains("line 4"),
        "{err}"
    );

    // NaN metrics are written as null.
    std::fs::write(
        &path,
        "{\"epoch\":1,\"phase\":\"val\",\"f1\":null,\"recall\":0.0,\"loss_all\":0.5}\n",
    )
    .unwrap();
    let epochs = load::read_val_epochs(&path).unwrap();
    let m = &epochs[0].metrics;
    assert_eq!((defined(m.f1), defined(m.recall)), (None, Some(0.0)));
}

#[test]
fn finding_runs_in_a_sweep_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    let mut made = Vec::new();
    for variant in ["lr-0.1", "lr-0.01"] {
        for seed in [2, 1] {
            let group = sweep
                .join(variant)
                .join(format!("seed-{seed}"))
                .join("p2ch12");
            let run = write_run(&group.join("2026-01-01_00.00.00-cls-x"), |_| {}, &[]);
            // The best epoch's copy and the TensorBoard folders are no runs.
            write_run(&run.join("best"), |_| {}, &[]);
            std::fs::create_dir_all(group.join("2026-01-01_00.00.00-trn_cls-x")).unwrap();
            made.push(run);
        }
    }
    made.sort();
    assert_eq!(find_runs(std::slice::from_ref(&sweep)).unwrap(), made);
    // Named twice (as a folder and by its config file): listed once.
    let twice = [made[0].clone(), made[0].join(CONFIG_FILE)];
    assert_eq!(find_runs(&twice).unwrap(), [made[0].clone()]);
    // A sweep's run goes by its variant, any other by its comment.
    assert_eq!(Run::load(&made[0]).unwrap().name, "lr-0.01");
    let lone = write_run(
        &tmp.path().join("runs/p2ch12/2026-01-01_00.00.00-cls-x"),
        |_| {},
        &[],
    );
    let lone = Run::load(&lone).unwrap();
    assert_eq!(lone.name, lone.comment);

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    let err = find_runs(&[sweep.clone(), empty.clone()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&empty.display().to_string())
            && err.contains("not a run folder")
            && err.contains("config.toml")
            && err.contains("metrics.jsonl"),
        "{err}"
    );
    let missing = tmp.path().join("nowhere");
    let err = find_runs(&[missing]).unwrap_err().to_string();
    assert!(err.contains("nowhere") && err.contains("no such"), "{err}");
}

#[test]
fn a_run_without_epochs_is_listed_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let done = write_run(
        &tmp.path().join("done"),
        |c| c.run.comment = "done".into(),
        &[(1, 0.5, 0.5, 0.5, Some(0.75))],
    );
    let fresh = tmp.path().join("fresh");
    write_run(&fresh, |c| c.data.batch_size = 8, &[]);
    std::fs::remove_file(fresh.join(METRICS_FILE)).unwrap();
    let runs = find_runs(&[done, fresh]).unwrap();
    let c = load_all(&runs);
    assert_eq!(c.differing, ["data.batch_size"]);
    let md = table::markdown(&c);
    let fresh_row = md.lines().find(|l| l.contains("| 8 |")).unwrap();
    assert!(fresh_row.contains("no epochs yet"), "{md}");
    let done_row = md.lines().find(|l| l.starts_with("| done |")).unwrap();
    assert!(done_row.contains("0.750"), "{done_row}");

    let out = tmp.path().join("out");
    let written = c.write(&out).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [MARKDOWN_FILE, CSV_FILE, plot::F1_FILE, plot::RECALL_FILE]
    );
    assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), md);
    for png in &written[2..] {
        let bytes = std::fs::read(png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), crate::evaluate::plots::SIZE);
    }
    // Nothing but the four files: no temporaries left behind.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);
}

#[test]
fn spread_is_mean_and_sample_sd_of_finite_values() {
    let s = Spread::of([1.0, 2.0, 3.0, f64::NAN]).unwrap();
    assert_eq!((s.mean, s.sd, s.n), (2.0, Some(1.0), 3));
    assert_eq!(s.to_string(), "2.000 ± 1.000");
    let one = Spread::of([0.25]).unwrap();
    assert_eq!((one.sd, one.to_string().as_str()), (None, "0.250"));
    assert_eq!(Spread::of([f64::NAN]), None);
    assert_eq!(Spread::of(std::iter::empty()), None);
}
