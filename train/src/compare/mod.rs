//! `train compare`: finished (or running) runs side by side.
//!
//! [`load`] finds run folders (directly named, or anywhere below a sweep
//! folder) and reads each one's settings and validation lines;
//! [`Comparison`] works out which settings differ and groups the runs that
//! differ only in their seed; [`table`] renders the Markdown and CSV
//! tables, [`plot`] the per-epoch PNGs.

pub mod load;
pub mod plot;
pub mod table;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

pub use load::{find_runs, flatten, flatten_config, Run, IGNORED_KEYS, SEED_KEY};

pub const MARKDOWN_FILE: &str = "compare.md";
pub const CSV_FILE: &str = "compare.csv";

/// The value a flattened setting has in a run whose config.toml leaves it out.
pub const UNSET: &str = "unset";

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}: no such file or folder")]
    NotFound(PathBuf),
    #[error(
        "{0}: not a run folder and holds none (a run folder, <runs>/<tb_prefix>/<stamp>-cls-<comment>/, \
         holds the config.toml and metrics.jsonl that `train` writes)"
    )]
    NoRuns(PathBuf),
    /// Names the file itself.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Names the file and the line.
    #[error(transparent)]
    Metrics(#[from] crate::evaluate::MetricsLogError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] shared::durable::DurableWriteError),
    #[error(transparent)]
    Plot(#[from] crate::evaluate::PlotError),
}

/// Runs with the same value of every compared setting: repeats that
/// differ only in `run.seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The group's value of each of [`Comparison::differing`], in order.
    pub values: Vec<String>,
    /// Indices into [`Comparison::runs`], in path order.
    pub members: Vec<usize>,
}

/// The runs, the settings that tell them apart, and their groups.
#[derive(Debug)]
pub struct Comparison {
    pub runs: Vec<Run>,
    /// Flattened keys (not ignored, not the seed) whose value is not the
    /// same in every run, sorted.
    pub differing: Vec<String>,
    /// In order of each group's first run.
    pub groups: Vec<Group>,
}

impl Comparison {
    pub fn new(runs: Vec<Run>) -> Self {
        let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.settings.keys()).collect();
        let differing: Vec<String> = keys
            .into_iter()
            .filter(|key| {
                let mut values = runs.iter().map(|r| r.setting(key));
                let first = values.next();
                values.any(|v| Some(v) != first)
            })
            .cloned()
            .collect();
        let mut groups: Vec<Group> = Vec::new();
        for (index, run) in runs.iter().enumerate() {
            let values: Vec<String> = differing
                .iter()
                .map(|k| run.setting(k).to_owned())
                .collect();
            match groups.iter_mut().find(|g| g.values == values) {
                Some(group) => group.members.push(index),
                None => groups.push(Group {
                    values,
                    members: vec![index],
                }),
            }
        }
        Comparison {
            runs,
            differing,
            groups,
        }
    }

    /// `key=value, …` of the group's differing settings, or its runs'
    /// comments when no setting differs.
    pub fn group_label(&self, group: &Group) -> String {
        if self.differing.is_empty() {
            return self.comments(group);
        }
        self.differing
            .iter()
            .zip(&group.values)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The distinct names (sweep variant or comment) of the group's runs, joined.
    pub fn comments(&self, group: &Group) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for &i in &group.members {
            let comment = self.runs[i].name.as_str();
            if !seen.contains(&comment) {
                seen.push(comment);
            }
        }
        seen.join(", ")
    }

    /// A legend entry for run `index`: its group's label, plus its seed
    /// where the group has several runs.
    pub fn run_label(&self, index: usize) -> String {
        let Some(group) = self.groups.iter().find(|g| g.members.contains(&index)) else {
            return self.runs[index].name.clone();
        };
        let label = self.group_label(group);
        if group.members.len() < 2 {
            return label;
        }
        match self.runs[index].seed {
            Some(seed) => format!("{label} seed={seed}"),
            None => format!("{label} #{}", index + 1),
        }
    }

    /// Distinct seeds among the group's runs.
    pub fn seed_count(&self, group: &Group) -> usize {
        let seeds: BTreeSet<Option<u64>> =
            group.members.iter().map(|&i| self.runs[i].seed).collect();
        seeds.len()
    }

    /// Writes compare.md, compare.csv and the plots into `out` (created if
    /// needed); returns their paths.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>, CompareError> {
        std::fs::create_dir_all(out).map_err(|source| CompareError::Io {
            path: out.to_owned(),
            source,
        })?;
        let markdown = out.join(MARKDOWN_FILE);
        shared::durable::write_atomically(&markdown, table::markdown(self).as_bytes())?;
        let csv = out.join(CSV_FILE);
        shared::durable::write_atomically(&csv, table::csv(self)?.as_bytes())?;
        let mut written = vec![markdown, csv];
        written.extend(plot::write_plots(out, self)?);
        Ok(written)
    }
}

/// Mean and sample standard deviation of one metric over a group's runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub mean: f64,
    /// `None` for a single value.
    pub sd: Option<f64>,
    pub n: usize,
}

impl Spread {
    /// `None` when there is no finite value.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        // n − 1: the runs are a sample of the seeds that could have been drawn.
        let sd = (n > 1).then(|| {
            let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        });
        Some(Spread { mean, sd, n })
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sd {
            Some(sd) => write!(f, "{:.3} ± {:.3}", self.mean, sd),
            None => write!(f, "{:.3}", self.mean),
        }
    }
}

#[cfg(test)]
mod tests;
