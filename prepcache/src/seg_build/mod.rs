//! `prepcache seg`: chapter 13's segmentation cache ([`shared::seg`]) from
//! a LUNA-style data folder.
//!
//! The scans and the merged candidate list are found exactly as `prepcache
//! build` finds them ([`inputs::discover`]); the series split over is every
//! series with a candidate row and a scan on disk (the book's
//! `sorted(getCandidateInfoDict().keys())`), each with its `is_nodule`
//! candidates as positives. Series are written in uid order by one
//! [`SegCacheWriter`] (it is sequential), while the next scans are decoded
//! on a pool ([`pipeline`]). A scan that cannot be read is recorded in its
//! sub-cache's `skipped` and the rest go on. The output folder is locked
//! for the whole run. Not resumable: a rerun rewrites both sub-caches.

mod pipeline;
mod report;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shared::cache::Codec;
use shared::lock::FolderLock;
use shared::seg::{Positive, SegCacheManifests, SegCacheWriter};

use crate::cache_build::inputs::{self, Inputs, Sources};

pub use report::print_summary;

pub struct SegOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub candidates: Option<PathBuf>,
    pub annotations: Option<PathBuf>,
    pub val_stride: usize,
    pub threads: usize,
    pub codec: Codec,
}

/// What a run wrote.
#[derive(Debug)]
pub struct SegReport {
    pub out: PathBuf,
    pub manifests: SegCacheManifests,
    /// Series split over (every series with candidates and a scan).
    pub series: usize,
    /// Bytes of the scans' files read.
    pub bytes_in: u64,
    pub wall: Duration,
}

/// One series to write: its scan and its positive candidates.
struct Job {
    uid: String,
    mhd: PathBuf,
    positives: Vec<Positive>,
}

const TOOL: &str = concat!("prepcache ", env!("CARGO_PKG_VERSION"), " seg");

/// What `prepcache seg` calls itself in a lock refusal.
const LOCK_HOLDER: &str = "prepcache seg";

pub fn run(opts: &SegOptions) -> Result<SegReport> {
    let started = Instant::now();
    if opts.val_stride == 0 {
        bail!("--val-stride 0: every N-th series is validation, so N must be at least 1");
    }
    let sources = Sources {
        data: &opts.data,
        candidates: opts.candidates.as_deref(),
        annotations: opts.annotations.as_deref(),
    };
    let inputs = inputs::discover(&sources, false)?;
    let jobs = jobs(&inputs);
    if jobs.is_empty() {
        bail!(
            "{}: no candidate row names a scan under {}; nothing to write",
            inputs.csv.display(),
            opts.data.display()
        );
    }
    // Held to the end: nobody else writes the sub-caches meanwhile.
    let _lock = lock_out(&opts.out)?;
    let uids: Vec<&str> = jobs.iter().map(|j| j.uid.as_str()).collect();
    let out = &opts.out;
    let mut writer = SegCacheWriter::create(out, &uids, opts.val_stride, opts.codec)
        .with_context(|| format!("--out {}: starting the segmentation cache", out.display()))?;
    let bytes_in = pipeline::write_series(&mut writer, &jobs, opts.threads)?;
    let manifests = writer
        .finish(TOOL)
        .with_context(|| format!("--out {}: finishing the segmentation cache", out.display()))?;
    Ok(SegReport {
        out: out.clone(),
        manifests,
        series: jobs.len(),
        bytes_in,
        wall: started.elapsed(),
    })
}

/// Every series of the candidate list (all on disk: the list leaves out
/// rows whose scan is not) with its `is_nodule` rows, sorted by uid.
fn jobs(inputs: &Inputs) -> Vec<Job> {
    let mut positives: BTreeMap<&str, Vec<Positive>> = BTreeMap::new();
    for c in &inputs.list.candidates {
        let list = positives.entry(c.series_uid.as_str()).or_default();
        if c.is_nodule {
            list.push(Positive {
                center_xyz: c.center_xyz,
                diameter_mm: c.diameter_mm,
            });
        }
    }
    positives
        .into_iter()
        .filter_map(|(uid, positives)| {
            let mhd = inputs.series.get(uid)?.clone();
            Some(Job {
                uid: uid.to_owned(),
                mhd,
                positives,
            })
        })
        .collect()
}

/// Create `out` if needed and lock it, or say why not in one line.
fn lock_out(out: &Path) -> Result<FolderLock> {
    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a folder", out.display());
    }
    fs::create_dir_all(out).with_context(|| format!("--out {}: creating it", out.display()))?;
    FolderLock::acquire(out, LOCK_HOLDER).map_err(|e| anyhow::anyhow!("--out {e}"))
}
