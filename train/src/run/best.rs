//! The best epoch of a run with `--select`: its checkpoint in `<run>/best/`
//! with `best.json` saying which epoch it is and why, and the rule
//! `eval`/`predict` follow to prefer it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::Select;

/// Folder of the best epoch's checkpoint inside a run folder.
pub const BEST_DIR: &str = "best";
pub const BEST_FILE: &str = "best.json";

/// Which epoch is best, by which metric, with which score (as the metric
/// reads: the loss is the loss, not its negation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch {
    pub epoch: usize,
    pub select: Select,
    pub score: f64,
}

impl BestEpoch {
    /// Is `value` of the same metric (as it reads) an improvement?
    pub fn beaten_by(&self, value: f64) -> bool {
        self.select.ranked(value) > self.select.ranked(self.score)
    }

    pub fn write(&self, best_dir: &Path) -> Result<()> {
        let path = best_dir.join(BEST_FILE);
        let json = serde_json::to_string_pretty(self).context("encoding best.json")?;
        shared::durable::write_atomically(&path, json.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(best_dir: &Path) -> Result<Self> {
        let path = best_dir.join(BEST_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a best.json", path.display()))
    }
}

/// The checkpoint `eval`/`predict` should load for `arg`: a run folder with
/// a `best/` checkpoint means that one (said on stdout); a file, or a
/// folder without `best/`, means itself.
pub fn prefer_best(arg: &Path, command: &str) -> PathBuf {
    let best = arg.join(BEST_DIR);
    if !arg.is_dir() || !best.join(super::checkpoint::MODEL_FILE).is_file() {
        return arg.to_owned();
    }
    match BestEpoch::read(&best) {
        Ok(b) => println!(
            "{command}: using the best epoch's checkpoint {} (epoch {}, {} {:.4}); pass {} for the last epoch",
            best.display(),
            b.epoch,
            b.select,
            b.score,
            arg.join(super::checkpoint::MODEL_FILE).display()
        ),
        Err(_) => println!("{command}: using the best epoch's checkpoint {}", best.display()),
    }
    best
}
