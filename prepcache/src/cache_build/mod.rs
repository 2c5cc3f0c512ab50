//! `prepcache build`: decode each scan once, in parallel, into the cache.
//!
//! Scans are dispatched largest first onto a pool of N threads, at most N+1
//! volumes open (mapped in place, or decoded into recycled buffers); a scan's candidates are cropped and compressed as
//! parallel tasks on the same pool, so idle threads help the last scans
//! instead of waiting. Each finished scan leaves a shard and a sidecar, which
//! is what makes the build resumable and incremental. Shards are named
//! after their content, so a rebuild never touches a shard the current index
//! names: the cache that was there stays readable until the new manifest
//! replaces it (a build that fails or is stopped leaves it as it was), and
//! only then are the files nothing uses any more removed. One build at a
//! time: the folder is locked; or several `--shard K/N` builds ([`share`]),
//! each writing only its own scans' files and none sealing, after which a
//! plain build reuses their records and seals. Every candidate row of the CSV that does
//! not make it into the cache (scan not on disk, unusable scan, centre
//! outside the volume) is listed with its line in `skipped.csv`.
//!
//! [`run`] is the build as its steps: discover ([`inputs`]) → plan
//! ([`plan`]) → lock the folder ([`CacheDir::begin`]) → reuse what is
//! still true ([`reuse`]) → build the rest ([`scans`], [`scan`]) →
//! assemble and seal ([`assemble`], [`CacheDir::seal`]) → report
//! ([`report`], [`skipped`]). The folder's layout is [`CacheDir`]'s.

pub(crate) mod assemble;
pub(crate) mod inputs;
mod limiter;
pub(crate) mod plan;
mod report;
pub(crate) mod reuse;
mod scan;
mod scans;
mod share;
pub(crate) mod sidecar;
mod skipped;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{anyhow, Result};
use shared::cache::{CacheDir, CacheDirError, Codec, Manifest};
use shared::crop::CROP_SHAPE;
use shared::hu::{HU_MAX, HU_MIN};
use shared::lock::{FolderLock, LockMode};

use inputs::Inputs;
use plan::{inputs_fingerprint, plan_scans, ChunkParams, ScanPlan};
use reuse::Done;
use sidecar::Sidecar;
use skipped::{print_skipped, skipped_rows, write_skipped, SkippedRow};

use crate::shard::Shard;

pub struct BuildOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub candidates: Option<PathBuf>,
    pub annotations: Option<PathBuf>,
    pub threads: usize,
    pub codec: Codec,
    pub force: bool,
    pub strict: bool,
    /// Build only this share of the scans, and do not seal.
    pub shard: Option<Shard>,
}

pub enum BuildStatus {
    UpToDate,
    Built,
    /// Ctrl-C: finished scans are kept; rerunning resumes.
    Interrupted,
}

const TOOL: &str = concat!("prepcache ", env!("CARGO_PKG_VERSION"));

/// What `prepcache build` calls itself in a lock refusal.
const LOCK_HOLDER: &str = "prepcache build";

pub fn run(opts: &BuildOptions, stop: &AtomicBool) -> Result<BuildStatus> {
    let started = Instant::now();
    let inputs = inputs::discover(&opts.sources(), opts.strict)?;
    let params = ChunkParams {
        codec: opts.codec,
        crop_shape: CROP_SHAPE,
        clip_hu: [HU_MIN, HU_MAX],
    };
    let plans = plan_scans(&inputs.series, &inputs.list.candidates, &params)?;
    let strict_csv = opts.strict.then_some(inputs.csv.as_path());
    if let Some(shard) = opts.shard {
        return share::build_share(opts, shard, plans, &params, strict_csv, stop);
    }
    let list = &inputs.list;
    let fingerprint = inputs_fingerprint(&plans, list.missing_series, list.missing_candidates);

    let dir = CacheDir::new(&opts.out);
    // Held to the end of the build: the records read below stay true.
    let _lock = begin(&dir)?;
    let mut done = reuse::reusable(&dir, &plans, opts.threads, opts.force, strict_csv)?;
    let todo: Vec<&ScanPlan> = plans
        .iter()
        .filter(|p| !done.contains_key(&p.uid))
        .collect();
    if todo.is_empty()
        && dir
            .read_manifest()
            .is_ok_and(|m| m.inputs_fingerprint == fingerprint)
    {
        return up_to_date(&dir, &inputs, &done, plans.len());
    }

    let reused = done.len();
    let work = Work {
        dir: &dir,
        params: &params,
        opts,
        stop,
        strict_csv,
    };
    let Some(bytes_in) = work.build_unless_stopped(&todo, &mut done, plans.len(), "")? else {
        return Ok(BuildStatus::Interrupted);
    };

    let sealed = seal(&dir, &inputs, &plans, &done, opts.codec, fingerprint)?;
    report::print_summary(&report::Summary {
        out: &opts.out,
        manifest: &sealed.manifest,
        inputs: &inputs,
        scans: plans.len(),
        built: todo.len(),
        reused,
        bytes_in,
        candidates_built: todo.iter().map(|p| p.candidates.len()).sum(),
        wall: started.elapsed(),
    });
    print_skipped(&sealed.skipped_csv, &inputs.csv, &sealed.skipped);
    Ok(BuildStatus::Built)
}

/// What step 5 builds with.
struct Work<'a> {
    dir: &'a CacheDir,
    params: &'a ChunkParams,
    opts: &'a BuildOptions,
    stop: &'a AtomicBool,
    strict_csv: Option<&'a Path>,
}

impl Work<'_> {
    /// [`build_rest`], then `None` when a stop was asked for (said, with
    /// `whose` before the count of the `of` scans done).
    fn build_unless_stopped(
        &self,
        todo: &[&ScanPlan],
        done: &mut Done,
        of: usize,
        whose: &str,
    ) -> Result<Option<u64>> {
        let bytes_in = build_rest(todo, self, done)?;
        if self.stop.load(Ordering::SeqCst) {
            eprintln!(
                "interrupted: {whose}{} of {of} scans are done and kept; rerun the same command to resume",
                done.len(),
            );
            return Ok(None);
        }
        Ok(Some(bytes_in))
    }
}

/// Step 5: build the scans left to do and add their records to `done`,
/// also when the build stops early; the bytes of scans read.
fn build_rest(todo: &[&ScanPlan], work: &Work, done: &mut Done) -> Result<u64> {
    let Work {
        dir,
        params,
        opts,
        stop,
        strict_csv,
    } = work;
    let outcome = scans::build_scans(todo, dir.root(), params, opts.threads, stop, *strict_csv)?;
    let bytes_in = outcome.sidecars.iter().map(|s| s.input_bytes).sum();
    done.extend(
        outcome
            .sidecars
            .into_iter()
            .map(|s| (s.series_uid.clone(), s)),
    );
    match outcome.error {
        Some(e) => Err(e),
        None => Ok(bytes_in),
    }
}

/// Step 3: refuse a folder that is not a cache, create and lock it.
fn begin(dir: &CacheDir) -> Result<FolderLock> {
    begin_as(dir, LOCK_HOLDER, LockMode::Exclusive)
}

/// [`begin`] for any writer: `holder` is what a refusal calls it.
pub(crate) fn begin_as(dir: &CacheDir, holder: &str, mode: LockMode) -> Result<FolderLock> {
    dir.begin_as(holder, mode).map_err(|e| match e {
        CacheDirError::NotAFolder { .. } | CacheDirError::NotACache { .. } => anyhow!("--out {e}"),
        e => e.into(),
    })
}

/// Nothing to build and the manifest is of these inputs. The skipped list
/// is rewritten (when it differs) even so: its lines and CSV name are not
/// part of the inputs, and older caches have none.
fn up_to_date(dir: &CacheDir, inputs: &Inputs, done: &Done, scans: usize) -> Result<BuildStatus> {
    let skipped = skipped_rows(&inputs.list, done)?;
    let skipped_csv = write_skipped(dir, &inputs.csv, &skipped)?;
    println!(
        "{}: up to date ({} scans, {} candidates); nothing to do",
        dir.root().display(),
        scans,
        inputs.list.candidates.len()
    );
    print_skipped(&skipped_csv, &inputs.csv, &skipped);
    Ok(BuildStatus::UpToDate)
}

struct Sealed<'a> {
    manifest: Manifest,
    skipped_csv: PathBuf,
    skipped: Vec<SkippedRow<'a>>,
}

/// Step 6: the skipped list (before the manifest, so a complete cache
/// always has its list), index and manifest, then the files no record of
/// the new cache uses.
fn seal<'a>(
    dir: &CacheDir,
    inputs: &'a Inputs,
    plans: &[ScanPlan],
    done: &'a Done,
    codec: Codec,
    fingerprint: String,
) -> Result<Sealed<'a>> {
    let contents = assemble::assemble(&inputs.list, done, codec, fingerprint)?;
    let skipped = skipped_rows(&inputs.list, done)?;
    let skipped_csv = write_skipped(dir, &inputs.csv, &skipped)?;
    let manifest = dir.seal(contents)?;
    let kept = plans.iter().filter_map(|p| done.get(&p.uid));
    remove_unused(dir, kept)?;
    Ok(Sealed {
        manifest,
        skipped_csv,
        skipped,
    })
}

/// Remove the shards, records and temporaries no kept record uses.
pub(crate) fn remove_unused<'a>(
    dir: &CacheDir,
    kept: impl Iterator<Item = &'a Sidecar>,
) -> Result<usize> {
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for s in kept {
        keep.insert(dir.sidecar(&s.series_uid));
        if let Some(shard) = s.shard_file() {
            keep.insert(dir.file(shard));
        }
    }
    let is_record = |bytes: &[u8]| serde_json::from_slice::<Sidecar>(bytes).is_ok();
    Ok(dir.remove_unused(&keep, is_record)?)
}
