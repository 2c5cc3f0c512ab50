//! `prepcache build --shard K/N`: build this shard's scans into the shared
//! folder and stop there. Sealing (index, manifest, skipped list, removing
//! what no record uses) is left to a plain build once every shard is done:
//! it reuses each shard's records, builds whatever a shard did not finish,
//! and writes what a single build would have written, byte for byte.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;
use shared::cache::CacheDir;
use shared::lock::LockMode;

use super::plan::{ChunkParams, ScanPlan};
use super::{begin_as, reuse, BuildOptions, BuildStatus, Work, LOCK_HOLDER};
use crate::shard::Shard;

pub(super) fn build_share(
    opts: &BuildOptions,
    shard: Shard,
    plans: Vec<ScanPlan>,
    params: &ChunkParams,
    strict_csv: Option<&std::path::Path>,
    stop: &AtomicBool,
) -> Result<BuildStatus> {
    let started = Instant::now();
    let total = plans.len();
    let mine: Vec<ScanPlan> = plans.into_iter().filter(|p| shard.owns(&p.uid)).collect();
    let dir = CacheDir::new(&opts.out);
    let holder = shard.holder(LOCK_HOLDER);
    // Shared with the other shards, never with a plain build: it seals and
    // removes files, a shard's half-written ones among them.
    let _lock = begin_as(&dir, &holder, LockMode::Shared)?;
    let mut done = reuse::reusable(&dir, &mine, opts.threads, opts.force, strict_csv)?;
    let reused = done.len();
    let todo: Vec<&ScanPlan> = mine.iter().filter(|p| !done.contains_key(&p.uid)).collect();
    let work = Work {
        dir: &dir,
        params,
        opts,
        stop,
        strict_csv,
    };
    let whose = format!("shard {shard}: ");
    let Some(bytes_in) = work.build_unless_stopped(&todo, &mut done, mine.len(), &whose)? else {
        return Ok(BuildStatus::Interrupted);
    };
    println!(
        "{}: shard {shard} done: {} of the {} scans are this shard's ({} built now, {} reused), \
         {:.1} MB read in {:.2} s",
        opts.out.display(),
        mine.len(),
        total,
        todo.len(),
        reused,
        bytes_in as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!("{}", crate::shard::NOT_SEALED);
    Ok(BuildStatus::Built)
}
