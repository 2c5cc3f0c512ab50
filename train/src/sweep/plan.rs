//! Where each (variant, seed) run of a sweep lives, and what a sweep run
//! must do for it: skip it (finished), resume it (a checkpoint of fewer
//! epochs) or start it, refusing when the sweep file changed its settings.
//!
//! `<out>/<variant>/seed-<S>/` is the run's runs root: the run folder is
//! `<tb_prefix>/<stamp>-cls-<comment>/` inside it. Next to that the sweep
//! keeps the run's planned settings ([`PLANNED_CONFIG_FILE`]), the child's
//! output ([`LOG_FILE`]) and, once the child has exited cleanly, a mark
//! ([`DONE_FILE`]) so a run stopped early by `--patience` stays finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Value;

use super::overrides::flatten;
use super::spec::Sweep;
use crate::config::{RunConfig, CONFIG_FILE};
use crate::run::checkpoint::{self, CheckpointError, TRAINER_FILE};
use crate::run::{RunDir, RunKind};

/// The settings the sweep planned for the run (`train --config` reads it).
pub const PLANNED_CONFIG_FILE: &str = "sweep-run.toml";
/// The child's stdout and stderr, appended to by each attempt.
pub const LOG_FILE: &str = "train.log";
/// Written when the child exits cleanly: `{"epochs": N}`.
pub const DONE_FILE: &str = "sweep-done.json";

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no seed: pass --seeds 1,2,3 or set run.seed in the base or [set]")]
    NoSeed,
    #[error("variant `{variant}` seed {seed}: the sweep file now sets {keys} differently from the run in {dir}; refusing to mix settings in one variant: use another --out, or delete {dir} to train it anew")]
    Changed {
        variant: String,
        seed: u64,
        dir: PathBuf,
        keys: String,
    },
    #[error("{dir}: more than one run with a checkpoint ({runs}); keep one")]
    Ambiguous { dir: PathBuf, runs: String },
    #[error("{run_dir}: {source}; delete the folder to train it anew")]
    Checkpoint {
        run_dir: PathBuf,
        source: CheckpointError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Planned { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PlanError + '_ {
    move |source| PlanError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What this sweep run does for one (variant, seed).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Finished: its checkpoint has the configured epochs (or it stopped
    /// early, cleanly).
    Skip { run_dir: PathBuf, epoch: usize },
    /// Interrupted after `epoch` finished epochs.
    Resume { run_dir: PathBuf, epoch: usize },
    /// Not started, or stopped before its first checkpoint; `stale` are
    /// the run folders (and TensorBoard folders) of such attempts, which
    /// hold no finished epoch and are cleared first.
    Start { stale: Vec<PathBuf> },
}

/// One run of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub variant: String,
    pub seed: u64,
    /// `<out>/<variant>/seed-<S>`: the run's runs root.
    pub dir: PathBuf,
    /// The run's settings: the variant's, with its seed, runs root and cache.
    pub config: RunConfig,
    pub action: Action,
}

impl Job {
    pub fn planned_config_file(&self) -> PathBuf {
        self.dir.join(PLANNED_CONFIG_FILE)
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    pub fn done_file(&self) -> PathBuf {
        self.dir.join(DONE_FILE)
    }

    /// The folder runs of this job are made in.
    pub fn group(&self) -> PathBuf {
        self.dir.join(&self.config.run.tb_prefix)
    }

    /// The run folder, once there is one with a checkpoint or a config.
    pub fn run_dir(&self) -> Option<PathBuf> {
        match &self.action {
            Action::Skip { run_dir, .. } | Action::Resume { run_dir, .. } => Some(run_dir.clone()),
            Action::Start { .. } => run_folders(&self.group()).ok()?.into_iter().last(),
        }
    }
}

/// The seeds to run: `given`, else the base's; duplicates dropped.
pub fn seeds(given: Option<&[u64]>, sweep: &Sweep) -> Result<Vec<u64>, PlanError> {
    let seeds = match given {
        Some(s) if !s.is_empty() => s.to_vec(),
        _ => vec![sweep.base_seed.ok_or(PlanError::NoSeed)?],
    };
    let mut unique = Vec::with_capacity(seeds.len());
    for s in seeds {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    Ok(unique)
}

/// Every (variant, seed) in order, with what to do for it. Reads what is
/// on disk under `out`; writes nothing.
pub fn plan(
    sweep: &Sweep,
    seeds: &[u64],
    out: &Path,
    cache: Option<&Path>,
) -> Result<Vec<Job>, PlanError> {
    let mut jobs = Vec::with_capacity(sweep.variants.len() * seeds.len());
    for variant in &sweep.variants {
        for &seed in seeds {
            let dir = out.join(&variant.name).join(format!("seed-{seed}"));
            let mut config = variant.config.clone();
            config.run.seed = Some(seed);
            config.run.runs = dir.clone();
            if let Some(cache) = cache {
                config.data.cache = Some(cache.to_owned());
            }
            let mut job = Job {
                variant: variant.name.clone(),
                seed,
                dir,
                config,
                action: Action::Start { stale: Vec::new() },
            };
            job.action = survey(&job)?;
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// What is on disk for `job`, checked against its planned settings.
fn survey(job: &Job) -> Result<Action, PlanError> {
    let mut checkpointed = Vec::new();
    let mut stale = Vec::new();
    for run_dir in run_folders(&job.group())? {
        if run_dir.join(TRAINER_FILE).is_file() {
            let state =
                checkpoint::read_state(&run_dir).map_err(|source| PlanError::Checkpoint {
                    run_dir: run_dir.clone(),
                    source,
                })?;
            checkpointed.push((run_dir, state.epoch));
        } else {
            stale.extend(with_event_folders(&run_dir));
        }
    }
    let (run_dir, epoch) = match checkpointed.len() {
        0 => return Ok(Action::Start { stale }),
        1 => checkpointed.remove(0),
        _ => {
            return Err(PlanError::Ambiguous {
                dir: job.group(),
                runs: checkpointed
                    .iter()
                    .map(|(d, _)| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    };
    refuse_changed_settings(job, &run_dir)?;
    let epochs = job.config.run.epochs;
    if epoch >= epochs || done_with(job)? == Some(epochs) {
        Ok(Action::Skip { run_dir, epoch })
    } else {
        Ok(Action::Resume { run_dir, epoch })
    }
}

/// The run folders in `group`, sorted (their names start with their UTC
/// stamp, so the latest is last).
fn run_folders(group: &Path) -> Result<Vec<PathBuf>, PlanError> {
    let entries = match std::fs::read_dir(group) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(group)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err(group))?.path();
        let is_run = path
            .file_name()
            .is_some_and(|n| RunKind::split(&n.to_string_lossy()).is_some());
        if is_run && path.join(CONFIG_FILE).is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// A run folder and its TensorBoard siblings (`S-cls-C` → `S-trn_cls-C`,
/// `S-val_cls-C`; `seg` likewise), those that exist.
fn with_event_folders(run_dir: &Path) -> Vec<PathBuf> {
    let dir = RunDir::existing(run_dir, RunKind::Classify);
    let mut dirs = vec![dir.root];
    dirs.extend(
        [dir.trn_events, dir.val_events]
            .into_iter()
            .filter(|d| d.is_dir()),
    );
    dirs
}

/// The epochs the run was asked for when its child last exited cleanly.
fn done_with(job: &Job) -> Result<Option<usize>, PlanError> {
    let path = job.done_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let record: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PlanError::Planned {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    Ok(record["epochs"].as_u64().map(|e| e as usize))
}

/// A run with finished epochs is only continued with the settings it
/// started with (those a resume may change aside).
fn refuse_changed_settings(job: &Job, run_dir: &Path) -> Result<(), PlanError> {
    let path = job.planned_config_file();
    if !path.is_file() {
        // Not made by a sweep (or its plan was deleted): nothing to hold
        // the run to but its own checkpoint, which the resume uses.
        return Ok(());
    }
    let before = RunConfig::read(&path).map_err(|e| PlanError::Planned {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let keys = differing_settings(&before, &job.config);
    if keys.is_empty() {
        return Ok(());
    }
    Err(PlanError::Changed {
        variant: job.variant.clone(),
        seed: job.seed,
        dir: run_dir.to_owned(),
        keys: keys.join(", "),
    })
}

/// The dotted keys whose values differ, leaving out what a resumed run may
/// change (where and how fast it runs, and how long: a longer sweep
/// extends its runs).
pub fn differing_settings(a: &RunConfig, b: &RunConfig) -> Vec<String> {
    let (a, b) = (settings(a), settings(b));
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys
}

fn settings(config: &RunConfig) -> BTreeMap<String, Value> {
    let mut c = config.clone();
    c.data.cache = None;
    c.data.num_workers = RunConfig::default().data.num_workers;
    c.run.epochs = 1;
    c.run.device = RunConfig::default().run.device;
    c.run.threads = None;
    c.run.profile = false;
    c.run.runs = PathBuf::new();
    match Value::try_from(&c) {
        Ok(Value::Table(t)) => flatten(&t).into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_a_resume_cannot_change_differ() {
        let a = RunConfig::default();
        let mut b = a.clone();
        b.run.epochs = 9;
        b.run.threads = Some(3);
        b.data.cache = Some("elsewhere".into());
        b.run.runs = "out/x/seed-1".into();
        assert!(differing_settings(&a, &b).is_empty());
        b.augment.noise = 25.0;
        b.data.balanced = Some(2);
        assert_eq!(
            differing_settings(&a, &b),
            ["augment.noise", "data.balanced"]
        );
    }

    #[test]
    fn event_folders_are_the_run_folders_siblings() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("2026-01-02_03.04.05-cls-demo");
        let trn = tmp.path().join("2026-01-02_03.04.05-trn_cls-demo");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&trn).unwrap();
        std::fs::write(run.join(CONFIG_FILE), "version = 1\n").unwrap();
        assert_eq!(run_folders(tmp.path()).unwrap(), vec![run.clone()]);
        assert_eq!(with_event_folders(&run), vec![run, trn]);
        assert!(run_folders(&tmp.path().join("absent")).unwrap().is_empty());
    }
}
