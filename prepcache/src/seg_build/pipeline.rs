//! Decode the scans on a pool, a batch ahead, while the one writer adds
//! them in uid order.
//!
//! The writer is sequential (one shard open at a time, entries in order),
//! so parallelism is in reading: a producer thread decodes a batch of
//! `threads` scans at once and hands them over through a channel of one
//! slot, then decodes the next batch while the writer works through this
//! one. At most `threads + 2` volumes are in memory (the batch, the slot,
//! the one being written): ~150 MB each for LUNA.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use rayon::ThreadPool;
use shared::ct_geometry::check_ct_geometry;
use shared::metaimage::read_volume;
use shared::seg::{SegCacheWriter, SegSeries};
use shared::volume::Volume;

use super::Job;

/// A decoded scan, or why it cannot be used (one line, naming the file).
type Opened = Result<Volume, String>;

/// Add every job's series to `writer` (or skip it, with the reason);
/// returns the bytes of the scan files read.
pub(super) fn write_series(
    writer: &mut SegCacheWriter,
    jobs: &[Job],
    threads: usize,
) -> Result<u64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|k| format!("prepcache-seg-{k}"))
        .build()
        .context("starting the worker threads")?;
    let bar = progress_bar(jobs.len() as u64);
    let (tx, rx) = mpsc::sync_channel(1);
    let (pool, batch) = (&pool, threads.max(1));
    let result = std::thread::scope(|s| {
        s.spawn(move || decode_in_order(pool, jobs, batch, tx));
        // Returning early drops `rx`, which stops the producer.
        consume(writer, jobs, rx, &bar)
    });
    bar.finish_and_clear();
    result
}

/// The producer: each batch decoded in parallel, sent in order.
fn decode_in_order(pool: &ThreadPool, jobs: &[Job], batch: usize, tx: SyncSender<Opened>) {
    for chunk in jobs.chunks(batch) {
        let opened: Vec<Opened> = pool.install(|| chunk.par_iter().map(open).collect());
        for o in opened {
            if tx.send(o).is_err() {
                return; // the writer stopped
            }
        }
    }
}

/// The writer's side: add or skip each series as its volume arrives.
fn consume(
    writer: &mut SegCacheWriter,
    jobs: &[Job],
    rx: Receiver<Opened>,
    bar: &ProgressBar,
) -> Result<u64> {
    let (mut bytes_in, mut crops, mut slices, mut skipped) = (0u64, 0usize, 0usize, 0usize);
    for (job, opened) in jobs.iter().zip(rx) {
        match opened {
            Ok(volume) => {
                bytes_in += scan_bytes(&job.mhd);
                if writer.is_validation(&job.uid) {
                    slices += volume.shape[0];
                } else {
                    crops += job.positives.len();
                }
                let series = SegSeries {
                    uid: job.uid.clone(),
                    volume,
                    positives: job.positives.clone(),
                };
                writer
                    .add(&series)
                    .with_context(|| format!("writing series {}", job.uid))?;
            }
            Err(reason) => {
                skipped += 1;
                bar.println(format!("skipped series {}: {reason}", job.uid));
                writer.skip_series(&job.uid, reason);
            }
        }
        bar.set_message(format!(
            "~{crops} training crops, ~{slices} validation slices, {skipped} skipped"
        ));
        bar.inc(1);
    }
    Ok(bytes_in)
}

/// Read a scan and refuse a geometry no CT has: it would put the
/// positives' masks at nonsense voxels (as `build` refuses it).
fn open(job: &Job) -> Opened {
    let volume = read_volume(&job.mhd).map_err(|e| e.to_string())?;
    check_ct_geometry(&volume.geometry).map_err(|e| format!("{}: {e}", job.mhd.display()))?;
    Ok(volume)
}

/// The header's and data file's sizes, for the throughput summary only.
fn scan_bytes(mhd: &Path) -> u64 {
    let size = |p: &Path| p.metadata().map_or(0, |m| m.len());
    size(mhd) + size(&mhd.with_extension("raw"))
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} series ({per_sec}, ETA {eta}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}
