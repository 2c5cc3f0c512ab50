//! Finding run folders and reading what a comparison needs from each: the
//! settings (config.toml, flattened to dotted keys) and the validation
//! lines of metrics.jsonl.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::{CompareError, UNSET};
use crate::config::{RunConfig, Select, CONFIG_FILE};
use crate::evaluate::metrics_log::{self, MetricsLine, METRICS_FILE};

/// Settings that say where or how fast a run went, not what it learned:
/// never a reason to tell two runs apart.
pub const IGNORED_KEYS: [&str; 8] = [
    "data.cache",
    "data.num_workers",
    "run.runs",
    "run.tb_prefix",
    "run.comment",
    "run.device",
    "run.threads",
    "run.profile",
];

/// Runs that differ only here are repeats of one setting.
pub const SEED_KEY: &str = "run.seed";

/// The folder the checkpoint of the best epoch goes to: a copy, not a run.
const BEST_DIR: &str = "best";

/// The run folders named by `paths`: each is a run folder, a file inside
/// one, or a folder searched (recursively) for run folders. In argument
/// order, then path order; a run named twice is listed once.
pub fn find_runs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CompareError> {
    let mut found = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(CompareError::NotFound(path.clone()));
        }
        let named_file_of_run = path.is_file()
            && path
                .file_name()
                .is_some_and(|n| n == CONFIG_FILE || n == METRICS_FILE)
            && path.parent().is_some_and(|p| p.join(CONFIG_FILE).is_file());
        if named_file_of_run {
            found.push(path.parent().unwrap_or(path).to_owned());
        } else if path.join(CONFIG_FILE).is_file() {
            // Named directly, a run that has not written metrics.jsonl yet
            // still counts: it is listed with no epochs.
            found.push(path.clone());
        } else {
            let before = found.len();
            search(path, &mut found)?;
            if found.len() == before {
                return Err(CompareError::NoRuns(path.clone()));
            }
        }
    }
    let mut seen = HashSet::new();
    found.retain(|dir| seen.insert(dir.canonicalize().unwrap_or_else(|_| dir.clone())));
    Ok(found)
}

fn is_run_dir(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && dir.join(METRICS_FILE).is_file()
}

/// Depth-first, sorted; symbolic links are not followed (no cycles) and a
/// run folder's own sub-folders (`best/`) are not searched.
fn search(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), CompareError> {
    let io = |source| CompareError::Io {
        path: dir.to_owned(),
        source,
    };
    if !dir.is_dir() {
        return Ok(());
    }
    if is_run_dir(dir) {
        found.push(dir.to_owned());
        return Ok(());
    }
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() && entry.file_name() != BEST_DIR {
            children.push(entry.path());
        }
    }
    children.sort();
    for child in children {
        search(&child, found)?;
    }
    Ok(())
}

/// The variant folder of a run `train sweep` placed at
/// `<variant>/seed-<S>/<tb_prefix>/<run>`.
fn sweep_variant(run: &Path) -> Option<String> {
    let seed_dir = run.parent()?.parent()?;
    let is_seed = seed_dir
        .file_name()?
        .to_str()?
        .strip_prefix("seed-")?
        .parse::<u64>()
        .is_ok();
    let variant = seed_dir.parent()?.file_name()?.to_str()?;
    is_seed.then(|| variant.to_owned())
}

/// A TOML table as `section.key → value` (arrays as `[a, b]`).
pub fn flatten(table: &toml::Table) -> BTreeMap<String, String> {
    crate::config::dotted::flatten(table)
        .into_iter()
        .map(|(key, value)| (key, show(&value)))
        .collect()
}

fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Float(f) => show_float(*f),
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// Shortest round-trip digits; exponent form where plain digits would be
/// long (1e-8 rather than 0.00000001).
fn show_float(f: f64) -> String {
    if f != 0.0 && (f.abs() < 1e-4 || f.abs() >= 1e15) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// Every setting of `config`, defaults filled in, as dotted keys: runs
/// written before a key existed compare as having its default.
pub fn flatten_config(config: &RunConfig) -> BTreeMap<String, String> {
    toml::from_str::<toml::Table>(&config.to_toml())
        .map(|t| flatten(&t))
        .unwrap_or_default()
}

/// What a comparison knows of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub dir: PathBuf,
    /// The run's name in tables and legends: its sweep variant when it
    /// lies in a sweep (`<out>/<variant>/seed-<S>/<tb_prefix>/<run>`), else
    /// its comment.
    pub name: String,
    pub comment: String,
    pub seed: Option<u64>,
    /// The run's `run.select`.
    pub select: Option<Select>,
    /// Flattened settings without [`IGNORED_KEYS`] and [`SEED_KEY`].
    pub settings: BTreeMap<String, String>,
    /// Validation lines in epoch order.
    pub epochs: Vec<MetricsLine>,
}

impl Run {
    /// Reads `dir`'s config.toml and metrics.jsonl (absent: no epochs yet).
    pub fn load(dir: &Path) -> Result<Self, CompareError> {
        let config = RunConfig::read(&dir.join(CONFIG_FILE))?;
        let mut settings = flatten_config(&config);
        settings.retain(|k, _| k != SEED_KEY && !IGNORED_KEYS.contains(&k.as_str()));
        Ok(Run {
            dir: dir.to_owned(),
            name: sweep_variant(dir).unwrap_or_else(|| config.run.comment.clone()),
            comment: config.run.comment.clone(),
            seed: config.run.seed,
            select: config.run.select,
            settings,
            epochs: read_val_epochs(&dir.join(METRICS_FILE))?,
        })
    }

    /// The run's value of `key`, [`UNSET`] when its config.toml has none.
    pub fn setting(&self, key: &str) -> &str {
        self.settings.get(key).map_or(UNSET, String::as_str)
    }

    /// The best epoch and the metric that chose it: the run's `run.select`
    /// (the loss: lowest), else F1; F1 too when no epoch has a value of the
    /// selected metric (AUC in runs that predate it). The first of equals.
    pub fn best(&self) -> Option<(Select, &MetricsLine)> {
        let by = |select: Select| {
            let mut best: Option<(f64, &MetricsLine)> = None;
            for e in &self.epochs {
                if let Some(s) = select.value(e).map(|v| select.ranked(v)) {
                    if best.is_none_or(|(b, _)| s > b) {
                        best = Some((s, e));
                    }
                }
            }
            best.map(|(_, e)| (select, e))
        };
        let select = self.select.unwrap_or(Select::F1);
        by(select).or_else(|| by(Select::F1))
    }

    pub fn last(&self) -> Option<&MetricsLine> {
        self.epochs.last()
    }
}

/// The validation lines of a metrics.jsonl, one per epoch (a repeated
/// epoch, from a resumed run, keeps its last line), read by
/// [`metrics_log::read`]'s rules; a line that is not a record is an error.
pub fn read_val_epochs(path: &Path) -> Result<Vec<MetricsLine>, CompareError> {
    let mut epochs = BTreeMap::new();
    for record in metrics_log::read(path)? {
        let record = record?;
        if record.is_validation() {
            epochs.insert(record.epoch, record);
        }
    }
    Ok(epochs.into_values().collect())
}
