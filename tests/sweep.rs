//! `train sweep`: variants × seeds as real child runs on a real cache; a
//! second sweep skips what is finished, resumes what was interrupted
//! (Ctrl-C included) and refuses a variant whose settings changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use luna_e2e::train::{find_dir, metrics_lines, train_output};

/// Tiny runs: 12 training and 8 validation samples an epoch, on the CPU.
const BASE: &str = r#"version = 1
[data]
batch_size = 4
num_workers = 1
balanced = 1
epoch_samples = 12
val_samples = 8
[run]
epochs = 2
device = "cpu"
comment = "sw"
"#;

struct Sweep {
    _tmp: tempfile::TempDir,
    cache: PathBuf,
    file: PathBuf,
    out: PathBuf,
}

impl Sweep {
    fn new(sweep: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 3, 5);
        std::fs::write(tmp.path().join("base.toml"), BASE).unwrap();
        let file = tmp.path().join("study.toml");
        std::fs::write(&file, sweep).unwrap();
        let out = tmp.path().join("out");
        Sweep {
            _tmp: tmp,
            cache,
            file,
            out,
        }
    }

    fn args(&self, seeds: &str) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["sweep".into(), self.file.clone().into()];
        for (flag, value) in [
            ("--cache", self.cache.as_os_str()),
            ("--out", self.out.as_os_str()),
            ("--seeds", seeds.as_ref()),
            ("--parallel", "2".as_ref()),
            ("--threads", "2".as_ref()),
        ] {
            args.push(flag.into());
            args.push(value.to_owned());
        }
        args
    }

    fn run(&self, seeds: &str) -> (bool, String) {
        train_output(&self.args(seeds))
    }

    fn seed_dir(&self, variant: &str, seed: u64) -> PathBuf {
        self.out.join(variant).join(format!("seed-{seed}"))
    }

    /// The one run folder of (variant, seed).
    fn run_dir(&self, variant: &str, seed: u64) -> PathBuf {
        find_dir(&self.seed_dir(variant, seed).join("p2ch12"), "-cls-sw")
    }
}

/// `key = value` lines of a config.toml (keys are unique across the
/// sections these tests read).
fn setting(config: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {}:\n{text}", config.display()))
        .to_owned()
}

fn val_epochs(run_dir: &Path) -> Vec<u64> {
    metrics_lines(&run_dir.join("metrics.jsonl"))
        .iter()
        .filter(|l| l["phase"] == "val")
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect()
}

/// Every file under `dir` with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n != "sweep.json" && n != shared::lock::LOCK_FILE)
            {
                // sweep.json notes the rerun; a lock file names its last
                // holder's PID.
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

const TWO_VARIANTS: &str = r#"base = "base.toml"
[set]
augment.flip = true
[[variant]]
name = "quiet"
augment.noise = 0.0
[[variant]]
name = "noisy"
augment.noise = 25.0
"#;

#[test]
fn each_variant_and_seed_runs_once_and_a_rerun_skips_them() {
    let sweep = Sweep::new(TWO_VARIANTS);
    let (ok, out) = sweep.run("1,2");
    assert!(ok, "{out}");
    assert_eq!(out.matches(": done in ").count(), 4, "{out}");
    assert!(out.contains("2 at a time with --threads 1 each"), "{out}");
    assert!(
        out.contains(&format!("train compare {}", sweep.out.display())),
        "{out}"
    );
    for (variant, noise) in [("quiet", "0.0"), ("noisy", "25.0")] {
        for seed in [1, 2] {
            let run = sweep.run_dir(variant, seed);
            let config = run.join("config.toml");
            assert_eq!(setting(&config, "noise"), noise, "{variant} {seed}");
            assert_eq!(setting(&config, "seed"), seed.to_string());
            assert_eq!(setting(&config, "flip"), "true");
            assert_eq!(val_epochs(&run), [1, 2], "{}", run.display());
            let log =
                std::fs::read_to_string(sweep.seed_dir(variant, seed).join("train.log")).unwrap();
            assert!(log.contains("train: done"), "{log}");
        }
    }
    // Two seeds of one variant are two different runs.
    let a = std::fs::read(sweep.run_dir("noisy", 1).join("metrics.jsonl")).unwrap();
    let b = std::fs::read(sweep.run_dir("noisy", 2).join("metrics.jsonl")).unwrap();
    assert_ne!(a, b);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sweep.out.join("sweep.json")).unwrap()).unwrap();
    let runs = record["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r["status"] == "done"), "{record:#}");
    assert!(
        runs.iter().all(|r| r["last_val"]["f1"].is_f64()),
        "{record:#}"
    );
    assert_eq!(record["variants"][1]["settings"]["augment.noise"], 25.0);

    // Again: nothing trains, nothing changes.
    let before = snapshot(&sweep.out);
    let (ok, again) = sweep.run("1,2");
    assert!(ok, "{again}");
    assert_eq!(
        again.matches(": skipped, finished (2/2 epochs)").count(),
        4,
        "{again}"
    );
    assert!(again.contains("4 finished, 0 to run"), "{again}");
    assert!(
        before == snapshot(&sweep.out),
        "files changed on a rerun:\n{again}"
    );

    // A variant whose settings changed is refused, before anything runs.
    std::fs::write(&sweep.file, TWO_VARIANTS.replace("25.0", "10.0")).unwrap();
    let (ok, refused) = sweep.run("1,2");
    assert!(!ok, "{refused}");
    assert!(
        refused.contains("variant `noisy` seed 1") && refused.contains("augment.noise"),
        "{refused}"
    );
    assert!(before == snapshot(&sweep.out), "files changed on a refusal");
}

#[test]
fn ctrl_c_stops_the_runs_and_the_next_sweep_resumes_them() {
    let sweep = Sweep::new("base = \"base.toml\"\n[set]\nrun.epochs = 1000\n");
    let child = Command::new(luna_e2e::train::bin())
        .args(sweep.args("1,2"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once both runs have a checkpoint.
    let started = Instant::now();
    while ![1, 2].iter().all(|&seed| {
        let group = sweep.seed_dir("base", seed).join("p2ch12");
        std::fs::read_dir(group).is_ok_and(|dirs| {
            dirs.filter_map(Result::ok)
                .any(|d| d.path().join("trainer.safetensors").exists())
        })
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoints after five minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert_eq!(text.matches(": interrupted after ").count(), 2, "{text}");
    assert!(text.contains("To go on: train sweep"), "{text}");
    let mut saved = 0;
    for seed in [1, 2] {
        let log = std::fs::read_to_string(sweep.seed_dir("base", seed).join("train.log")).unwrap();
        assert!(log.contains("train: interrupted during epoch"), "{log}");
        let epochs = val_epochs(&sweep.run_dir("base", seed));
        assert!(!epochs.is_empty());
        saved = saved.max(*epochs.last().unwrap());
    }
    let record = std::fs::read_to_string(sweep.out.join("sweep.json")).unwrap();
    assert_eq!(record.matches("\"interrupted\"").count(), 2, "{record}");

    // A run that stopped before its first checkpoint: cleared and started anew.
    let stale = sweep
        .seed_dir("base", 3)
        .join("p2ch12/2020-01-01_00.00.00-cls-sw");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("config.toml"), BASE).unwrap();
    std::fs::create_dir_all(stale.with_file_name("2020-01-01_00.00.00-trn_cls-sw")).unwrap();

    // Shorter now, but past every checkpoint: both runs go on from theirs.
    let epochs = saved + 1;
    std::fs::write(
        &sweep.file,
        format!("base = \"base.toml\"\n[set]\nrun.epochs = {epochs}\n"),
    )
    .unwrap();
    let (ok, resumed) = sweep.run("1,2,3");
    assert!(ok, "{resumed}");
    assert_eq!(
        resumed.matches(": resuming after epoch ").count(),
        2,
        "{resumed}"
    );
    assert_eq!(resumed.matches(": started").count(), 1, "{resumed}");
    for seed in [1, 2, 3] {
        let run = sweep.run_dir("base", seed);
        let all: Vec<u64> = (1..=epochs).collect();
        assert_eq!(val_epochs(&run), all, "seed {seed}");
    }
    assert!(!stale.exists());
    assert!(!stale
        .with_file_name("2020-01-01_00.00.00-trn_cls-sw")
        .exists());
}

#[test]
fn sigterm_stops_the_runs_with_exit_143_and_the_next_sweep_resumes_them() {
    let sweep = Sweep::new("base = \"base.toml\"\n[set]\nrun.epochs = 1000\n");
    let child = Command::new(luna_e2e::train::bin())
        .args(sweep.args("1"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_dir(sweep.seed_dir("base", 1).join("p2ch12")).is_ok_and(|dirs| {
        dirs.filter_map(Result::ok)
            .any(|d| d.path().join("trainer.safetensors").exists())
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint after five minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(143), "{text}");
    assert!(text.contains("sweep: interrupt (SIGTERM):"), "{text}");
    assert_eq!(text.matches(": interrupted after ").count(), 1, "{text}");
    assert!(text.contains("To go on: train sweep"), "{text}");
    let saved = *val_epochs(&sweep.run_dir("base", 1)).last().unwrap();

    std::fs::write(
        &sweep.file,
        format!("base = \"base.toml\"\n[set]\nrun.epochs = {}\n", saved + 1),
    )
    .unwrap();
    let (ok, resumed) = sweep.run("1");
    assert!(ok, "{resumed}");
    assert!(resumed.contains(": resuming after epoch "), "{resumed}");
    let all: Vec<u64> = (1..=saved + 1).collect();
    assert_eq!(val_epochs(&sweep.run_dir("base", 1)), all);
}

#[test]
fn a_grid_past_the_variant_cap_is_refused_at_once_naming_the_cap() {
    // 1000 × 1000 = 10^6 variants.
    let values = (1..=1000)
        .map(|i| format!("{}", i as f64 / 1e4))
        .collect::<Vec<_>>()
        .join(", ");
    let sweep = Sweep::new(&format!(
        "base = \"base.toml\"\n[grid]\n\"optimizer.lr\" = [{values}]\n\"augment.noise\" = [{values}]\n"
    ));
    let started = Instant::now();
    let (ok, text) = sweep.run("1");
    assert!(!ok, "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        text.contains("1000000 variants") && text.contains("at most 10000"),
        "{text}"
    );
    assert!(
        !sweep.out.exists(),
        "a refused sweep wrote {}",
        sweep.out.display()
    );
}
