//! Sweep files read, expanded and refused, on real files.

use std::path::{Path, PathBuf};

use super::runner::Launcher;
use super::spec::{Sweep, SweepError};
use crate::config::{BalanceSampler, RunConfig};
use crate::run::RunKind;

/// Writes `files` (name, text) into a fresh folder; returns it and the
/// path of the first.
fn write_files(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let first = dir.path().join(files[0].0);
    (dir, first)
}

const BASE: &str =
    "version = 1\n[run]\nepochs = 2\nseed = 5\ncomment = \"base\"\n[data]\nbalanced = 1\n";

fn load(sweep: &str) -> Result<Sweep, SweepError> {
    let (_dir, path) = write_files(&[("sweep.toml", sweep), ("base.toml", BASE)]);
    Sweep::load(&path)
}

fn error(sweep: &str) -> String {
    load(sweep).unwrap_err().to_string()
}

fn names(sweep: &Sweep) -> Vec<&str> {
    sweep.variants.iter().map(|v| v.name.as_str()).collect()
}

#[test]
fn a_grid_expands_to_its_cartesian_product_named_after_its_values() {
    let sweep = load(
        "base = \"base.toml\"\n[grid]\naugment.noise = [0.0, 25.0]\n\"data.balanced\" = [1, 2, 4]\n",
    )
    .unwrap();
    assert_eq!(
        names(&sweep),
        [
            "augment.noise=0,data.balanced=1",
            "augment.noise=0,data.balanced=2",
            "augment.noise=0,data.balanced=4",
            "augment.noise=25,data.balanced=1",
            "augment.noise=25,data.balanced=2",
            "augment.noise=25,data.balanced=4",
        ]
    );
    let v = &sweep.variants[4];
    assert_eq!(v.config.augment.noise, 25.0);
    assert_eq!(v.config.data.balanced, Some(2));
    // The rest is the base's.
    assert_eq!(v.config.run.epochs, 2);
    assert_eq!(v.config.run.comment, "base");
    assert_eq!(sweep.base_seed, Some(5));
}

#[test]
fn variants_times_grid_points_with_set_applied_to_all() {
    let sweep = load(
        r#"
base = "base.toml"
[set.augment]
flip = true
[grid]
"optimizer.lr" = [0.01, 0.001]
[[variant]]
name = "plain"
[[variant]]
augment.noise = 10.0
model.input_norm = "fixed"
"#,
    )
    .unwrap();
    assert_eq!(
        names(&sweep),
        [
            "plain,optimizer.lr=0.01",
            "plain,optimizer.lr=0.001",
            "augment.noise=10,model.input_norm=fixed,optimizer.lr=0.01",
            "augment.noise=10,model.input_norm=fixed,optimizer.lr=0.001",
        ]
    );
    assert!(sweep.variants.iter().all(|v| v.config.augment.flip));
    let v = &sweep.variants[3];
    assert_eq!(v.config.optimizer.lr, 0.001);
    assert_eq!(v.config.augment.noise, 10.0);
    assert_eq!(v.overrides.len(), 3);
    assert_eq!(sweep.variants[0].config.augment.noise, 0.0);
}

#[test]
fn without_base_grid_or_variants_the_defaults_run_once() {
    let sweep = load("[set]\nrun.seed = 3\n").unwrap();
    assert_eq!(names(&sweep), ["base"]);
    let mut expected = RunConfig::default();
    expected.run.seed = Some(3);
    // No [compute] section: what RunConfig::read gives such a file.
    expected.compute = crate::config::ComputeConfig::fp32_contiguous();
    assert_eq!(sweep.variants[0].config, expected);
}

#[test]
fn derived_names_are_folder_safe() {
    let sweep = load(
        "base = \"base.toml\"\n[grid]\ndata.balanced_schedule = [\"1:1,3:2\"]\noptimizer.betas = [[0.9, 0.99]]\n",
    )
    .unwrap();
    assert_eq!(
        names(&sweep),
        ["data.balanced_schedule=1-1,3-2,optimizer.betas=0.9+0.99"]
    );
    assert_eq!(sweep.variants[0].config.optimizer.betas, [0.9, 0.99]);
}

#[test]
fn an_unknown_key_is_named_with_the_sweep_file() {
    let err = error("base = \"base.toml\"\n[grid]\naugment.nois = [1.0]\n");
    assert!(
        err.contains("sweep.toml") && err.contains("augment.nois") && err.contains("[grid]"),
        "{err}"
    );
    let err = error("[[variant]]\nname = \"x\"\naugmnt.noise = 1.0\n");
    assert!(err.contains("augmnt.noise") && err.contains("`x`"), "{err}");
    let err = error("[set]\naugment.flip.p = 0.5\n");
    assert!(
        err.contains("augment.flip.p") && err.contains("augment.flip"),
        "{err}"
    );
    let err = error("seeds = [1, 2]\n");
    assert!(err.contains("unknown key `seeds`"), "{err}");
}

#[test]
fn a_value_of_the_wrong_type_is_named_with_its_key() {
    let err = error("[grid]\naugment.noise = [\"loud\"]\n");
    assert!(
        err.contains("augment.noise") && err.contains("sweep.toml"),
        "{err}"
    );
    let err = error("[set]\ndata.balanced = -1\n");
    assert!(
        err.contains("data.balanced") && err.contains("[set]"),
        "{err}"
    );
    let err = error("[grid]\noptimizer.name = [\"lbfgs\"]\n");
    assert!(
        err.contains("optimizer.name") && err.contains("lbfgs"),
        "{err}"
    );
    // A value of the right type out of its range: the variant's check.
    let err = error("[[variant]]\nname = \"neg\"\naugment.noise = -1.0\n");
    assert!(
        err.contains("variant `neg`") && err.contains("--augment-noise"),
        "{err}"
    );
}

#[test]
fn an_empty_grid_or_a_grid_value_that_is_not_a_list_is_refused() {
    let err = error("[grid]\naugment.noise = []\n");
    assert!(
        err.contains("augment.noise") && err.contains("empty list"),
        "{err}"
    );
    let err = error("[grid]\naugment.noise = 25.0\n");
    assert!(
        err.contains("augment.noise") && err.contains("list of values"),
        "{err}"
    );
}

#[test]
fn keys_the_sweep_owns_are_refused() {
    let err = error("[set]\nrun.runs = \"elsewhere\"\n");
    assert!(err.contains("run.runs") && err.contains("--out"), "{err}");
    let err = error("[grid]\nrun.seed = [1, 2]\n");
    assert!(err.contains("run.seed") && err.contains("--seeds"), "{err}");
    let err = error("[[variant]]\ndata.cache = \"c\"\n");
    assert!(err.contains("data.cache"), "{err}");
    let err = error("[grid]\naugment.noise = [1.0]\n[[variant]]\naugment.noise = 2.0\n");
    assert!(err.contains("in [grid] too"), "{err}");
}

#[test]
fn names_must_be_distinct_folder_names() {
    let err = error("[[variant]]\nname = \"a\"\n[[variant]]\nname = \"a\"\naugment.flip = true\n");
    assert!(err.contains("both named `a`"), "{err}");
    let err = error("[[variant]]\nname = \"../up\"\n");
    assert!(
        err.contains("\"../up\"") && err.contains("names a folder"),
        "{err}"
    );
}

#[test]
fn a_bad_base_is_named() {
    let err = error("base = \"missing.toml\"\n");
    assert!(
        err.contains("sweep.toml") && err.contains("missing.toml"),
        "{err}"
    );
    let (_dir, path) = write_files(&[
        ("sweep.toml", "base = \"base.toml\"\n"),
        ("base.toml", "version = 1\n[data]\nbalanced = \"two\"\n"),
    ]);
    let err = Sweep::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("base.toml") && err.contains("balanced"),
        "{err}"
    );
}

fn example(name: &str) -> Sweep {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/sweeps")
        .join(name);
    Sweep::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_augmentation_example_is_the_books_study() {
    let sweep = example("augmentation.toml");
    assert_eq!(
        names(&sweep),
        ["none", "flip", "offset", "scale", "rotate", "noise", "all"]
    );
    let on = |v: &super::Variant| v.config.augment.to_string();
    let described: Vec<String> = sweep.variants.iter().map(on).collect();
    assert_eq!(
        described,
        [
            "off",
            "flip",
            "offset ±0.1",
            "scale ±0.2",
            "rotate",
            "noise σ=25 HU",
            "flip, offset ±0.1, scale ±0.2, rotate, noise σ=25 HU",
        ]
    );
    // Otherwise chapter 12's run at demo scale.
    let demo =
        RunConfig::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chapter12.toml"))
            .unwrap();
    let all = &sweep.variants[6].config;
    assert_eq!(all, &demo);
    assert_eq!(sweep.base_seed, demo.run.seed);
}

#[test]
fn the_balance_example_crosses_ratios_and_samplers() {
    let sweep = example("balance.toml");
    assert_eq!(sweep.variants.len(), 10);
    let ratios: Vec<Option<u32>> = sweep
        .variants
        .iter()
        .map(|v| v.config.data.balanced)
        .collect();
    assert_eq!(ratios, [1, 1, 2, 2, 4, 4, 8, 8, 1, 1].map(Some).to_vec());
    let weighted = sweep
        .variants
        .iter()
        .filter(|v| v.config.data.sampler == BalanceSampler::Weighted)
        .count();
    assert_eq!(weighted, 5);
    let scheduled: Vec<&str> = sweep
        .variants
        .iter()
        .filter(|v| v.config.data.balanced_schedule.is_some())
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        scheduled,
        [
            "schedule-1.2.4,data.sampler=ratio",
            "schedule-1.2.4,data.sampler=weighted"
        ]
    );
    assert_eq!(
        sweep.variants[8]
            .config
            .data
            .balanced_schedule
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("1:1,3:2,6:4")
    );
}

#[test]
fn seeds_come_from_the_flag_or_else_the_base() {
    let sweep = load("base = \"base.toml\"\n").unwrap();
    assert_eq!(
        super::plan::seeds(Some(&[3, 1, 3]), &sweep).unwrap(),
        [3, 1]
    );
    assert_eq!(super::plan::seeds(None, &sweep).unwrap(), [5]);
    let unseeded = load("[set]\nrun.epochs = 2\n").unwrap();
    let err = super::plan::seeds(None, &unseeded).unwrap_err().to_string();
    assert!(err.contains("--seeds") && err.contains("run.seed"), "{err}");
}

#[test]
fn a_plan_puts_each_run_in_its_folder_and_clears_attempts_without_a_checkpoint() {
    use super::plan::{plan, Action};

    let sweep = load("base = \"base.toml\"\n[grid]\naugment.noise = [0.0, 25.0]\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    // An attempt that stopped before its first checkpoint.
    let group = out.path().join("augment.noise=25/seed-2/p2ch12");
    let stale = group.join("2026-01-02_03.04.05-cls-base");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::create_dir_all(group.join("2026-01-02_03.04.05-val_cls-base")).unwrap();
    std::fs::write(stale.join("config.toml"), BASE).unwrap();

    let jobs = plan(&sweep, &[1, 2], out.path(), Some(Path::new("cache/x"))).unwrap();
    let order: Vec<(&str, u64)> = jobs.iter().map(|j| (j.variant.as_str(), j.seed)).collect();
    assert_eq!(
        order,
        [
            ("augment.noise=0", 1),
            ("augment.noise=0", 2),
            ("augment.noise=25", 1),
            ("augment.noise=25", 2)
        ]
    );
    let last = &jobs[3];
    assert_eq!(last.dir, out.path().join("augment.noise=25/seed-2"));
    assert_eq!(last.config.run.runs, last.dir);
    assert_eq!(last.config.run.seed, Some(2));
    assert_eq!(last.config.augment.noise, 25.0);
    assert_eq!(
        last.config.data.cache.as_deref(),
        Some(Path::new("cache/x"))
    );
    assert_eq!(
        last.action,
        Action::Start {
            stale: vec![
                stale.clone(),
                group.join("2026-01-02_03.04.05-val_cls-base")
            ]
        }
    );
    assert_eq!(jobs[0].action, Action::Start { stale: vec![] });

    let launcher = Launcher {
        exe: PathBuf::from("train"),
        task: RunKind::Classify,
        threads_per_run: 3,
        parallel: 2,
    };
    let args = |job: &super::Job| -> Vec<String> {
        launcher
            .command(job)
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    let planned = last.planned_config_file().display().to_string();
    assert_eq!(
        args(last),
        ["--config", &planned, "--cache", "cache/x", "--threads", "3"]
    );
    let mut resumed = last.clone();
    resumed.action = Action::Resume {
        run_dir: stale.clone(),
        epoch: 1,
    };
    let run_dir = stale.display().to_string();
    assert_eq!(
        args(&resumed),
        [
            "--resume",
            &run_dir,
            "--epochs",
            "2",
            "--cache",
            "cache/x",
            "--threads",
            "3"
        ]
    );
}

#[test]
fn a_segmentation_sweep_starts_from_the_chapter_13_preset_and_runs_train_seg() {
    let sweep =
        load("task = \"seg\"\nbase = \"base.toml\"\n[grid]\noptimizer.lr = [0.001, 0.0001]\n")
            .unwrap();
    assert_eq!(sweep.file.task, RunKind::Segment);
    let v = &sweep.variants[1];
    let mut expected = crate::config::presets::segmentation();
    // The base file's keys, then the variant's.
    expected.run.epochs = 2;
    expected.run.seed = Some(5);
    expected.run.comment = "base".to_owned();
    expected.data.balanced = Some(1);
    expected.optimizer.lr = 0.0001;
    assert_eq!(v.config, expected);

    let job = super::plan::plan(&sweep, &[5], Path::new("out"), Some(Path::new("c")))
        .unwrap()
        .remove(0);
    let launcher = Launcher {
        exe: PathBuf::from("train"),
        task: sweep.file.task,
        threads_per_run: 2,
        parallel: 1,
    };
    let args: Vec<String> = launcher
        .command(&job)
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(args[..2], ["seg", "--config"]);

    let err = error("task = \"segment\"\n");
    assert!(err.contains("expected \"cls\""), "{err}");
}
