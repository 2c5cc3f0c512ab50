//! Step 5, build: the scans to do, largest first, on a pool of N threads
//! with at most N+1 volumes open; one sealer thread makes each finished
//! shard durable and records it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result};
use rayon::ThreadPool;

use super::limiter::Limiter;
use super::plan::{ChunkParams, ScanPlan};
use super::report::Progress;
use super::reuse::first_unbuilt;
use super::scan::{self, PendingScan, SpareBuffers};
use super::sidecar::Sidecar;

pub struct ScansOutcome {
    /// The scans finished and recorded, whatever else happened.
    pub sidecars: Vec<Sidecar>,
    /// The first error, after which no new scan started.
    pub error: Option<anyhow::Error>,
}

/// What the workers and the sealer share.
struct Shared<'a> {
    stop: &'a AtomicBool,
    progress: Progress,
    sidecars: Mutex<Vec<Sidecar>>,
    error: Mutex<Option<anyhow::Error>>,
}

impl Shared<'_> {
    /// Keep the first error and start no new scan.
    fn fail(&self, e: anyhow::Error) {
        self.stop.store(true, Ordering::SeqCst);
        lock(&self.error).get_or_insert(e);
    }
}

/// `strict`: the candidates CSV, when the first row left out must stop the
/// build (no new scans start; those in progress finish and are kept).
pub fn build_scans(
    todo: &[&ScanPlan],
    out: &Path,
    params: &ChunkParams,
    threads: usize,
    stop: &AtomicBool,
    strict: Option<&Path>,
) -> Result<ScansOutcome> {
    let mut order: Vec<&ScanPlan> = todo.to_vec();
    // Largest first: the long scans start early and the small ones fill the tail.
    order.sort_by(|a, b| {
        b.input_bytes
            .cmp(&a.input_bytes)
            .then_with(|| a.uid.cmp(&b.uid))
    });
    let candidates: usize = order.iter().map(|p| p.candidates.len()).sum();
    let shared = Shared {
        stop,
        progress: Progress::new(candidates as u64, order.len()),
        sidecars: Mutex::new(Vec::new()),
        error: Mutex::new(None),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|k| format!("prepcache-{k}"))
        .build()
        .context("starting the worker threads")?;
    std::thread::scope(|threads_scope| {
        // Bounded, so a slow disk holds the workers back instead of piling
        // up open shards.
        let (pending_tx, pending_rx) = mpsc::sync_channel(threads + 1);
        let shared = &shared;
        threads_scope.spawn(move || seal_each(pending_rx, out, strict, shared));
        dispatch(&pool, &order, out, params, threads + 1, pending_tx, shared);
    });
    shared.progress.bar.finish_and_clear();
    Ok(ScansOutcome {
        sidecars: shared
            .sidecars
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()),
        error: shared.error.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}

/// Start each scan on the pool as a volume slot frees up (at most
/// `open_volumes` at once), until done or stopped; finished scans go to
/// the sealer. Returns when every started scan has finished.
fn dispatch<'a>(
    pool: &ThreadPool,
    order: &[&'a ScanPlan],
    out: &Path,
    params: &ChunkParams,
    open_volumes: usize,
    pending_tx: SyncSender<(&'a ScanPlan, PendingScan)>,
    shared: &Shared,
) {
    let limiter = Limiter::new(open_volumes);
    let spares = SpareBuffers::default();
    let tick = || shared.progress.bar.inc(1);
    pool.in_place_scope(|s| {
        for plan in order {
            let permit = limiter.acquire();
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let (tick, spares, pending_tx) = (&tick, &spares, pending_tx.clone());
            let plan: &ScanPlan = plan;
            s.spawn(move |_| {
                let result = scan::build_scan(plan, out, params, spares, tick);
                drop(permit);
                match result {
                    // The sealer only stops when every sender is gone.
                    Ok(pending) => pending_tx.send((plan, pending)).unwrap_or(()),
                    Err(e) => {
                        shared.fail(e.context(format!("writing the cache for scan {}", plan.uid)))
                    }
                }
            });
        }
    });
}

/// Make each finished shard durable and record it (scan::PendingScan::seal),
/// off the workers; with `strict`, a scan that left a row out stops the
/// build.
fn seal_each(
    pending_rx: Receiver<(&ScanPlan, PendingScan)>,
    out: &Path,
    strict: Option<&Path>,
    shared: &Shared,
) {
    for (plan, pending) in pending_rx {
        let uid = pending.series_uid().to_owned();
        let sc = match pending.seal(out) {
            Ok(sc) => sc,
            Err(e) => {
                shared.fail(e.context(format!("writing the cache for scan {uid}")));
                continue;
            }
        };
        if let Some(csv) = strict {
            if let Some(u) = first_unbuilt(plan, &sc) {
                shared.fail(u.strict_error(
                    csv,
                    "the scans finished so far are kept for the next build, the cache is as it was",
                ));
            }
        }
        shared.progress.scan_done(&sc);
        lock(&shared.sidecars).push(sc);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
