//! Step 3, reuse: the scans an earlier build finished whose resume record
//! is still true, and (`--strict`) the refusal of a record that leaves a
//! candidate row out.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use shared::cache::CacheDir;

use super::plan::ScanPlan;
use super::sidecar::{RowResult, ScanOutcome, Sidecar};

/// The records of finished scans, by series uid.
pub type Done = HashMap<String, Sidecar>;

/// The scans whose resume record is still true (none with `force`); with
/// `strict_csv`, an error if one of them leaves a row out, since building
/// would leave it out again: the build fails before the cache is touched.
pub fn reusable(
    dir: &CacheDir,
    plans: &[ScanPlan],
    threads: usize,
    force: bool,
    strict_csv: Option<&Path>,
) -> Result<Done> {
    if force {
        return Ok(HashMap::new());
    }
    let done = fresh_sidecars(dir, plans, threads)?;
    if let Some(csv) = strict_csv {
        let first = plans
            .iter()
            .filter_map(|p| first_unbuilt(p, done.get(&p.uid)?))
            .min_by_key(|u| u.line);
        if let Some(u) = first {
            return Err(u.strict_error(csv, "the cache is unchanged"));
        }
    }
    Ok(done)
}

/// The scans whose resume record is still true: same inputs, and a shard
/// on disk with every recorded frame intact. Read in parallel (it reads
/// every shard once).
fn fresh_sidecars(dir: &CacheDir, plans: &[ScanPlan], threads: usize) -> Result<Done> {
    fresh_records(dir, plans.iter(), threads)
}

/// [`fresh_sidecars`] of any list of plans (`prepcache seg` keeps its
/// plans inside its own).
pub(crate) fn fresh_records<'a>(
    dir: &CacheDir,
    plans: impl Iterator<Item = &'a ScanPlan>,
    threads: usize,
) -> Result<Done> {
    use rayon::prelude::*;
    let plans: Vec<&ScanPlan> = plans.collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the worker threads")?;
    Ok(pool.install(|| {
        plans
            .par_iter()
            .filter_map(|p| {
                Sidecar::load_fresh(dir.root(), &p.uid, &p.fingerprint).map(|s| (p.uid.clone(), s))
            })
            .collect()
    }))
}

/// The first (lowest-line) candidate row of a scan that its build record
/// leaves out of the cache.
pub struct Unbuilt<'a> {
    uid: &'a str,
    line: u64,
    reason: &'a str,
}

impl Unbuilt<'_> {
    pub fn strict_error(&self, csv: &Path, state: &str) -> anyhow::Error {
        anyhow!(
            "--strict: {} line {}: candidate of series {} cannot be cached: {}; {state}",
            csv.display(),
            self.line,
            self.uid,
            self.reason
        )
    }
}

/// `sidecar` must be `plan`'s (same fingerprint): its rows are then the
/// plan's candidates, in the same order.
pub fn first_unbuilt<'a>(plan: &'a ScanPlan, sidecar: &'a Sidecar) -> Option<Unbuilt<'a>> {
    let unbuilt = |line, reason| Unbuilt {
        uid: &plan.uid,
        line,
        reason,
    };
    match &sidecar.outcome {
        ScanOutcome::Failed { reason } => plan
            .candidates
            .iter()
            .map(|c| c.line)
            .min()
            .map(|line| unbuilt(line, reason)),
        ScanOutcome::Built { rows, .. } => rows
            .iter()
            .zip(&plan.candidates)
            .filter_map(|(row, c)| match &row.result {
                RowResult::Skipped { reason } => Some(unbuilt(c.line, reason)),
                RowResult::Stored { .. } => None,
            })
            .min_by_key(|u| u.line),
    }
}
