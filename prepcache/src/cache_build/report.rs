//! What a build tells the terminal: the progress bar, the warnings of each
//! finished scan, and the summary at the end (step 7).

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use shared::cache::Manifest;

use super::inputs::Inputs;
use super::sidecar::{RowResult, ScanOutcome, Sidecar};

/// The bar over every candidate to build, with a scans-and-throughput
/// message the sealer updates as scans finish.
pub struct Progress {
    pub bar: ProgressBar,
    started: Instant,
    scans: usize,
    scans_done: AtomicUsize,
    bytes_done: AtomicU64,
}

impl Progress {
    pub fn new(candidates: u64, scans: usize) -> Self {
        let progress = Progress {
            bar: progress_bar(candidates),
            started: Instant::now(),
            scans,
            scans_done: AtomicUsize::new(0),
            bytes_done: AtomicU64::new(0),
        };
        progress.update_message();
        progress
    }

    /// One scan sealed: show its warnings and count it.
    pub fn scan_done(&self, sc: &Sidecar) {
        report_scan(&self.bar, sc);
        self.scans_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(sc.input_bytes, Ordering::Relaxed);
        self.update_message();
    }

    fn update_message(&self) {
        let mb = self.bytes_done.load(Ordering::Relaxed) as f64 / 1e6;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "scans {}/{} · {:.0} MB/s",
            self.scans_done.load(Ordering::Relaxed),
            self.scans,
            mb / secs
        ));
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} candidates ({per_sec}, ETA {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn report_scan(bar: &ProgressBar, sc: &Sidecar) {
    bar.suspend(|| match &sc.outcome {
        ScanOutcome::Failed { reason } => {
            eprintln!("warning: skipping scan {}: {reason}", sc.series_uid)
        }
        ScanOutcome::Built { rows, .. } => {
            for r in rows {
                if let RowResult::Skipped { reason } = &r.result {
                    eprintln!(
                        "warning: skipping candidate of {} at xyz {:?}: {reason}",
                        sc.series_uid, r.center_xyz
                    );
                }
            }
        }
    });
}

pub struct Summary<'a> {
    pub out: &'a Path,
    pub manifest: &'a Manifest,
    pub inputs: &'a Inputs,
    pub scans: usize,
    pub built: usize,
    pub reused: usize,
    pub bytes_in: u64,
    pub candidates_built: usize,
    pub wall: Duration,
}

pub fn print_summary(s: &Summary) {
    let m = s.manifest;
    let secs = s.wall.as_secs_f64().max(1e-6);
    let failed_scans = m.skipped.iter().filter(|k| k.center_xyz.is_none()).count();
    let skipped_candidates = m.skipped.len() - failed_scans;
    println!("{}: cache complete", s.out.display());
    println!(
        "  csv         {} rows of {}, parsed in {:.2} s, listed and sorted in {:.2} s",
        s.inputs.csv_rows,
        s.inputs.csv.display(),
        s.inputs.parse_time.as_secs_f64(),
        s.inputs.list_time.as_secs_f64()
    );
    println!(
        "  scans       {} ({} built now, {} reused, {} unusable)",
        s.scans, s.built, s.reused, failed_scans
    );
    println!(
        "  candidates  {} stored ({} positive), {} skipped (centre outside the volume)",
        m.candidates, m.positives, skipped_candidates
    );
    if m.missing_series > 0 {
        println!(
            "  not on disk {} series of the CSV ({} candidates), left out like the book's requireOnDisk",
            m.missing_series, m.missing_candidates
        );
    }
    println!(
        "  read        {:.1} MB of scans ({:.1} MB/s)",
        s.bytes_in as f64 / 1e6,
        s.bytes_in as f64 / 1e6 / secs
    );
    let ratio = m.raw_bytes as f64 / (m.stored_bytes.max(1)) as f64;
    println!(
        "  stored      {:.1} MB for {:.1} MB of int16 crops (ratio {ratio:.2}, {:.1} KB/candidate), codec {}",
        m.stored_bytes as f64 / 1e6,
        m.raw_bytes as f64 / 1e6,
        m.stored_bytes as f64 / 1e3 / (m.candidates.max(1)) as f64,
        m.codec
    );
    println!(
        "  time        {:.2} s, {:.0} candidates/s",
        secs,
        s.candidates_built as f64 / secs
    );
    // Candidates outside their volume can be many; they are among the rows
    // print_skipped shows and skipped.csv lists.
    for k in m.skipped.iter().filter(|k| k.center_xyz.is_none()) {
        println!("  unusable scan {}: {}", k.series_uid, k.reason);
    }
}
