//! `<out>/sweep.json`: the sweep's variants, seeds and the status of each
//! run, rewritten (atomically) whenever a run starts or ends.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::plan::{Action, Job};
use super::spec::Sweep;
use super::summary::LastVal;

pub const SWEEP_RECORD_FILE: &str = "sweep.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
    Interrupted,
}

#[derive(Clone, Debug, Serialize)]
pub struct VariantRecord {
    pub name: String,
    /// The dotted keys it changes from the base and `[set]`.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub variant: String,
    pub seed: u64,
    pub status: Status,
    /// The run folder (`…/<stamp>-cls-<comment>`), once there is one.
    pub run_dir: Option<PathBuf>,
    pub log: PathBuf,
    /// Epochs the run is configured for.
    pub epochs: usize,
    pub last_val: Option<LastVal>,
    /// Wall time of this sweep's attempt, when it made one.
    pub wall_s: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepRecord {
    pub sweep_file: PathBuf,
    pub base: Option<PathBuf>,
    pub seeds: Vec<u64>,
    pub variants: Vec<VariantRecord>,
    pub runs: Vec<RunRecord>,
}

impl SweepRecord {
    /// The record of a planned sweep: finished runs are `done`, the rest
    /// `pending`.
    pub fn new(sweep: &Sweep, seeds: &[u64], jobs: &[Job]) -> Self {
        let variants = sweep
            .variants
            .iter()
            .map(|v| VariantRecord {
                name: v.name.clone(),
                settings: v
                    .overrides
                    .iter()
                    .map(|(k, value)| {
                        let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
                        (k.clone(), json)
                    })
                    .collect(),
            })
            .collect();
        let runs = jobs
            .iter()
            .map(|job| {
                let run_dir = job.run_dir();
                RunRecord {
                    variant: job.variant.clone(),
                    seed: job.seed,
                    status: match job.action {
                        Action::Skip { .. } => Status::Done,
                        _ => Status::Pending,
                    },
                    last_val: run_dir.as_deref().and_then(LastVal::of_run),
                    run_dir,
                    log: job.log_file(),
                    epochs: job.config.run.epochs,
                    wall_s: None,
                    error: None,
                }
            })
            .collect();
        SweepRecord {
            sweep_file: sweep.file.path.clone(),
            base: sweep.file.base.clone(),
            seeds: seeds.to_vec(),
            variants,
            runs,
        }
    }

    pub fn write(&self, out: &Path) -> std::io::Result<()> {
        let path = out.join(SWEEP_RECORD_FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        shared::durable::write_atomically(&path, text.as_bytes())?;
        Ok(())
    }
}
