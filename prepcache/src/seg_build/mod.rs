//! `prepcache seg`: chapter 13's segmentation cache ([`shared::seg`]) from
//! a LUNA-style data folder, with the guarantees of `prepcache build`:
//! resumable, incremental, stopped cleanly by Ctrl-C/SIGTERM, the manifest
//! written last.
//!
//! # How
//!
//! Each sub-cache (`seg-train/`, `seg-val/`) is a cache folder written the
//! way `prepcache build` writes one, with its machinery: a series is one
//! content-named shard plus the classifier's resume record
//! (`shards/<uid>.json`, [`Sidecar`]) in the sub-cache of its role, written
//! after the shard is complete and durable. A record whose fingerprint
//! ([`plan`]: the scan's files, its candidate rows, codec, layout and the
//! series' role) still matches, and whose shard still holds exactly the
//! frames it lists (or is untouched since it was sealed), is reused;
//! anything else is built again. The index of each sub-cache is then
//! assembled from the records alone ([`assemble`]), in uid order, so a run
//! that was stopped, killed or crashed and then resumed writes the same
//! index, manifest and shard bytes as one that never stopped. Manifests
//! are written last (index, then manifest, each atomically): a sub-cache
//! without one reads as incomplete, and the previous cache stays readable
//! until its new manifest replaces it (new shards never overwrite old
//! ones); only then are files no record uses removed. Both manifests carry
//! the fingerprint of all inputs: when nothing is left to build and both
//! match, the run says "up to date" and writes nothing. A run stopped
//! between the two seals leaves a new `seg-train` beside the old
//! `seg-val` until it is rerun.
//!
//! # Steps
//!
//! discover ([`inputs::discover`], as `build`) → plan ([`plan`]; refuse a
//! split with no training positive) → lock `OUT` and both sub-caches →
//! reuse ([`fresh_records`]) → build the rest ([`workers`], [`series`]) →
//! seal each sub-cache ([`assemble`], [`CacheDir::seal`], remove unused)
//! → report ([`report`]).
//!
//! # What is left out, and said
//!
//! Every series is listed in its sub-cache's manifest `skipped` when it
//! contributes nothing: an unreadable scan or one of implausible geometry,
//! a validation scan whose slices are not the first one's H × W, and a
//! training series with no positive candidate (the book simply has no crop
//! from it; [`NO_POSITIVE_REASON`]). So is each positive whose centre is
//! outside its scan, or whose scan is smaller than the 7 × 96 × 96 crop. A
//! positive near the scan's edge is cropped as the book's
//! `getRawCandidate` does: the crop is shifted inside, never padded, and
//! its mask plane follows it.

mod assemble;
mod plan;
mod report;
mod series;
#[cfg(test)]
mod tests;
mod workers;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shared::cache::{CacheDir, Codec, Manifest};
use shared::lock::{FolderLock, LockMode};
use shared::seg::{Role, SegCacheManifests, NO_POSITIVE_REASON, TRAIN_DIR, VAL_DIR};

use crate::cache_build::inputs::{self, Sources};
use crate::cache_build::reuse::{fresh_records, Done};
use crate::cache_build::sidecar::Sidecar;
use crate::cache_build::{begin_as, remove_unused};
use crate::shard::Shard;

use plan::{SegPlan, SegPlans};

pub use report::{print_share, print_summary, print_up_to_date};

pub struct SegOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub candidates: Option<PathBuf>,
    pub annotations: Option<PathBuf>,
    pub val_stride: usize,
    pub threads: usize,
    pub codec: Codec,
    /// Build only this share of the series, and do not seal.
    pub shard: Option<Shard>,
}

impl SegOptions {
    /// Whether this run builds `plan`'s series (all of them without
    /// `--shard`).
    fn owns(&self, plan: &SegPlan) -> bool {
        self.shard.is_none_or(|s| s.owns(&plan.scan.uid))
    }
}

pub enum SegStatus {
    /// Nothing changed since the cache was written: it was not touched.
    UpToDate(SegReport),
    Built(SegReport),
    /// `--shard`: this share is built; nothing is sealed.
    ShardDone(ShareReport),
    /// Stopped on request: finished series are kept; rerunning resumes.
    Interrupted,
}

/// What a run wrote (or found up to date).
#[derive(Debug)]
pub struct SegReport {
    pub out: PathBuf,
    pub manifests: SegCacheManifests,
    /// Series split over (every series with candidates and a scan).
    pub series: usize,
    /// Series built by this run, and reused from an earlier one.
    pub built: usize,
    pub reused: usize,
    /// Bytes of the scans' files read.
    pub bytes_in: u64,
    pub wall: Duration,
}

/// What a `--shard` run built.
#[derive(Debug)]
pub struct ShareReport {
    pub out: PathBuf,
    pub shard: Shard,
    /// Series that are this shard's, and all series.
    pub mine: usize,
    pub series: usize,
    pub built: usize,
    pub reused: usize,
    pub bytes_in: u64,
    pub wall: Duration,
}

const TOOL: &str = concat!("prepcache ", env!("CARGO_PKG_VERSION"), " seg");

/// What `prepcache seg` calls itself in a lock refusal.
const LOCK_HOLDER: &str = "prepcache seg";

/// The two sub-cache folders under `OUT`.
pub(crate) struct SubCaches {
    train: CacheDir,
    val: CacheDir,
}

impl SubCaches {
    fn of(&self, role: Role) -> &CacheDir {
        match role {
            Role::Train => &self.train,
            Role::Val => &self.val,
        }
    }
}

pub fn run(opts: &SegOptions, stop: &AtomicBool) -> Result<SegStatus> {
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
    let plans = plan::plan(&inputs, opts.val_stride, opts.codec)?;
    if plans.plans.is_empty() {
        bail!(
            "{}: no candidate row names a scan under {}; nothing to write",
            inputs.csv.display(),
            opts.data.display()
        );
    }
    plan::check_training_positives(&plans, &inputs, opts.val_stride)?;
    // Held to the end: nobody else writes the sub-caches meanwhile, so the
    // records read below stay true.
    let (caches, _locks) = lock_all(opts)?;
    let mine: Vec<&SegPlan> = plans.plans.iter().filter(|p| opts.owns(p)).collect();
    let mut done = Reused::read(&caches, &mine, opts.threads)?;
    let reused = done.len();
    let todo: Vec<&SegPlan> = mine.iter().copied().filter(|p| !done.has(p)).collect();
    if todo.is_empty() && opts.shard.is_none() {
        if let Some(manifests) = up_to_date(&caches, &plans.fingerprint) {
            let report = report(opts, &plans, manifests, [0, reused], 0, started);
            return Ok(SegStatus::UpToDate(report));
        }
    }

    let finished = workers::build_all(&todo, &caches, opts.codec, opts.threads, stop);
    let bytes_in = finished.records.iter().map(|(_, r)| r.input_bytes).sum();
    for (role, record) in finished.records {
        done.insert(role, record);
    }
    if let Some(e) = finished.error {
        return Err(e);
    }
    if stop.load(Ordering::SeqCst) {
        eprintln!(
            "interrupted: {} of {} series are done and kept; rerun the same command to resume",
            done.len(),
            mine.len()
        );
        return Ok(SegStatus::Interrupted);
    }
    if let Some(shard) = opts.shard {
        return Ok(SegStatus::ShardDone(ShareReport {
            out: opts.out.clone(),
            shard,
            mine: mine.len(),
            series: plans.plans.len(),
            built: todo.len(),
            reused,
            bytes_in,
            wall: started.elapsed(),
        }));
    }
    let manifests = seal(&caches, &inputs.list, &plans, &done, opts.codec)?;
    let counts = [todo.len(), reused];
    let report = report(opts, &plans, manifests, counts, bytes_in, started);
    Ok(SegStatus::Built(report))
}

/// The records of finished series, per sub-cache.
struct Reused {
    train: Done,
    val: Done,
}

impl Reused {
    /// The records in each sub-cache still true for `plans`.
    fn read(caches: &SubCaches, plans: &[&SegPlan], threads: usize) -> Result<Self> {
        let fresh = |role| {
            let of_role = plans.iter().filter(|p| p.role == role);
            fresh_records(caches.of(role), of_role.map(|p| &p.scan), threads)
        };
        Ok(Reused {
            train: fresh(Role::Train)?,
            val: fresh(Role::Val)?,
        })
    }

    fn of(&self, role: Role) -> &Done {
        match role {
            Role::Train => &self.train,
            Role::Val => &self.val,
        }
    }

    fn has(&self, plan: &SegPlan) -> bool {
        self.of(plan.role).contains_key(&plan.scan.uid)
    }

    fn insert(&mut self, role: Role, record: Sidecar) {
        let done = match role {
            Role::Train => &mut self.train,
            Role::Val => &mut self.val,
        };
        done.insert(record.series_uid.clone(), record);
    }

    fn len(&self) -> usize {
        self.train.len() + self.val.len()
    }
}

/// Both manifests, when both are of these inputs.
fn up_to_date(caches: &SubCaches, fingerprint: &str) -> Option<SegCacheManifests> {
    let read = |dir: &CacheDir| {
        dir.read_manifest()
            .ok()
            .filter(|m| m.inputs_fingerprint == fingerprint)
    };
    Some(SegCacheManifests {
        train: read(&caches.train)?,
        val: read(&caches.val)?,
    })
}

/// Index and manifest of each sub-cache, then the files no record of the
/// new cache uses (shards of series rebuilt or moved to the other split,
/// temporaries of an interrupted run).
fn seal(
    caches: &SubCaches,
    list: &shared::luna::CandidateList,
    plans: &SegPlans,
    done: &Reused,
    codec: Codec,
) -> Result<SegCacheManifests> {
    let seal_one = |role| -> Result<Manifest> {
        let dir = caches.of(role);
        let records = done.of(role);
        let contents = assemble::assemble(role, records, list, codec, &plans.fingerprint)?;
        let manifest = dir.seal(contents)?;
        remove_unused(dir, plans.of(role).filter_map(|p| records.get(&p.scan.uid)))?;
        Ok(manifest)
    };
    Ok(SegCacheManifests {
        train: seal_one(Role::Train)?,
        val: seal_one(Role::Val)?,
    })
}

/// `[built, reused]`: series built by this run and kept from an earlier one.
fn report(
    opts: &SegOptions,
    plans: &SegPlans,
    manifests: SegCacheManifests,
    [built, reused]: [usize; 2],
    bytes_in: u64,
    started: Instant,
) -> SegReport {
    SegReport {
        out: opts.out.clone(),
        manifests,
        series: plans.plans.len(),
        built,
        reused,
        bytes_in,
        wall: started.elapsed(),
    }
}

/// `OUT` and both sub-caches, created and locked for this run. Shards
/// share them with each other, never with a plain run (it seals and
/// removes files, a shard's half-written ones among them).
fn lock_all(opts: &SegOptions) -> Result<(SubCaches, [FolderLock; 3])> {
    let (holder, mode) = match opts.shard {
        Some(shard) => (shard.holder(LOCK_HOLDER), LockMode::Shared),
        None => (LOCK_HOLDER.to_owned(), LockMode::Exclusive),
    };
    let out = lock_out(&opts.out, &holder, mode)?;
    let caches = SubCaches {
        train: CacheDir::new(opts.out.join(TRAIN_DIR)),
        val: CacheDir::new(opts.out.join(VAL_DIR)),
    };
    let train = begin_as(&caches.train, &holder, mode)?;
    let val = begin_as(&caches.val, &holder, mode)?;
    Ok((caches, [out, train, val]))
}

/// Create `out` if needed and lock it, or say why not in one line.
fn lock_out(out: &Path, holder: &str, mode: LockMode) -> Result<FolderLock> {
    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a folder", out.display());
    }
    fs::create_dir_all(out).with_context(|| format!("--out {}: creating it", out.display()))?;
    FolderLock::acquire_as(out, holder, mode).map_err(|e| anyhow::anyhow!("--out {e}"))
}

/// Training series that have no positive, from `seg-train`'s manifest.
pub fn without_positives(train: &Manifest) -> usize {
    train
        .skipped
        .iter()
        .filter(|s| s.center_xyz.is_none() && s.reason == NO_POSITIVE_REASON)
        .count()
}
