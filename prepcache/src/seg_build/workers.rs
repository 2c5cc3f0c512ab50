//! Build the series left to do on `threads` threads, largest scan first,
//! each thread a series at a time from read to record: series are
//! independent shards, so nothing is ordered here (the index is put in
//! order when it is assembled) and at most `threads` volumes are in memory.
//! A stop request (the first Ctrl-C/SIGTERM) or the first error starts no
//! new series; those in progress finish and are kept.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use shared::cache::Codec;
use shared::seg::Role;

use crate::cache_build::sidecar::Sidecar;

use super::plan::SegPlan;
use super::series::build_series;
use super::SubCaches;

/// The series finished and recorded (whatever else happened), with their
/// role, and the first error.
pub(super) struct Finished {
    pub records: Vec<(Role, Sidecar)>,
    pub error: Option<anyhow::Error>,
}

pub(super) fn build_all(
    todo: &[&SegPlan],
    caches: &SubCaches,
    codec: Codec,
    threads: usize,
    stop: &AtomicBool,
) -> Finished {
    let mut order: Vec<&SegPlan> = todo.to_vec();
    // Largest first: the long scans start early, the small ones fill the tail.
    order.sort_by(|a, b| (b.scan.input_bytes, &a.scan.uid).cmp(&(a.scan.input_bytes, &b.scan.uid)));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let records = Mutex::new(Vec::new());
    let error = Mutex::new(None);
    let bar = progress_bar(order.len() as u64);
    let work = || loop {
        let k = next.fetch_add(1, Ordering::SeqCst);
        if k >= order.len() || stop.load(Ordering::SeqCst) || failed.load(Ordering::SeqCst) {
            return;
        }
        let plan = order[k];
        match build_series(plan, caches.of(plan.role).root(), codec) {
            Ok(record) => lock(&records).push((plan.role, record)),
            Err(e) => {
                failed.store(true, Ordering::SeqCst);
                let e = e.context(format!("writing series {}", plan.scan.uid));
                lock(&error).get_or_insert(e);
            }
        }
        bar.inc(1);
    };
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(work);
        }
    });
    bar.finish_and_clear();
    Finished {
        records: records.into_inner().unwrap_or_else(|p| p.into_inner()),
        error: error.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} series ({per_sec}, ETA {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}
