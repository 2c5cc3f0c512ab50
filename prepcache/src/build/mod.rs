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
//! time: the folder is locked. Every candidate row of the CSV that does
//! not make it into the cache (scan not on disk, unusable scan, centre
//! outside the volume) is listed with its line in `skipped.csv`.

mod limiter;
mod out_dir;
mod plan;
mod scan;
mod sidecar;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use shared::cache::format::SKIPPED_FILE;
use shared::cache::reader::read_manifest;
use shared::cache::writer::{finalize, CacheContents};
use shared::cache::{Codec, Entry, Manifest, ShardInfo, Skipped};
use shared::crop::CROP_SHAPE;
use shared::durable::write_atomically;
use shared::luna::{
    build_candidate_list, find_series, read_annotations_csv, read_candidates_csv_lines,
    CandidateInfo, CandidateList,
};
use shared::volume::{HU_MAX, HU_MIN};

use limiter::Limiter;
use plan::{inputs_fingerprint, plan_scans, ChunkParams, ScanPlan};
use sidecar::{Row, RowResult, ScanOutcome, Sidecar};

pub struct BuildOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub candidates: Option<PathBuf>,
    pub annotations: Option<PathBuf>,
    pub threads: usize,
    pub codec: Codec,
    pub force: bool,
    pub strict: bool,
}

pub enum BuildStatus {
    UpToDate,
    Built,
    /// Ctrl-C: finished scans are kept; rerunning resumes.
    Interrupted,
}

const TOOL: &str = concat!("prepcache ", env!("CARGO_PKG_VERSION"));

/// The candidates CSV names tried in the data folder when `--candidates` is
/// not given: the book's `candidates.csv`, else the organisers' revised list
/// (same columns), loose or in the folder its archive unpacks to.
const CANDIDATES_DEFAULTS: [&str; 3] = [
    "candidates.csv",
    "candidates_V2.csv",
    "candidates_V2/candidates_V2.csv",
];

fn candidates_csv(opts: &BuildOptions) -> Result<PathBuf> {
    if let Some(path) = &opts.candidates {
        return Ok(path.clone());
    }
    let found = CANDIDATES_DEFAULTS
        .iter()
        .map(|name| opts.data.join(name))
        .find(|path| path.is_file());
    match found {
        Some(path) => {
            if path != opts.data.join(CANDIDATES_DEFAULTS[0]) {
                println!(
                    "candidates: {} (there is no {})",
                    path.display(),
                    CANDIDATES_DEFAULTS[0]
                );
            }
            Ok(path)
        }
        None => bail!(
            "no candidates CSV in {}: expected {} (or pass --candidates CSV)",
            opts.data.display(),
            CANDIDATES_DEFAULTS.join(" or ")
        ),
    }
}

pub fn run(opts: &BuildOptions, stop: &AtomicBool) -> Result<BuildStatus> {
    let started = Instant::now();
    let annotations_csv = opts
        .annotations
        .clone()
        .unwrap_or_else(|| opts.data.join("annotations.csv"));
    let series = find_series(&opts.data)
        .with_context(|| format!("looking for scans under {}", opts.data.display()))?;
    if series.is_empty() {
        bail!(
            "no scans found: expected {}/subset*/<seriesuid>.mhd",
            opts.data.display()
        );
    }
    let candidates_csv = candidates_csv(opts)?;
    let parsing = Instant::now();
    let rows = read_candidates_csv_lines(&candidates_csv).context("loading the candidate list")?;
    let parse_time = parsing.elapsed();
    let annotations =
        read_annotations_csv(&annotations_csv).context("loading the candidate list")?;
    let listing = Instant::now();
    let list = build_candidate_list(&rows, &annotations, &series);
    if let Some(warning) = list.duplicates_warning(&candidates_csv) {
        eprintln!("warning: {warning}");
    }
    let list_time = listing.elapsed();
    let csv_rows = rows.len();
    drop(rows);
    if opts.strict {
        if let Some(m) = list.missing.first() {
            bail!(
                "--strict: {} line {}: series {} is not on disk (no {}.mhd in a subset* folder under {}); nothing was written",
                candidates_csv.display(),
                m.line,
                m.series_uid,
                m.series_uid,
                opts.data.display()
            );
        }
    }
    let params = ChunkParams {
        codec: opts.codec,
        crop_shape: CROP_SHAPE,
        clip_hu: [HU_MIN, HU_MAX],
    };
    let plans = plan_scans(&series, &list.candidates, &params)?;
    let inputs = inputs_fingerprint(&plans, list.missing_series, list.missing_candidates);

    // Held to the end of the build: the records read below stay true.
    let _lock = out_dir::open_out(&opts.out)?;
    let mut done = if opts.force {
        HashMap::new()
    } else {
        fresh_sidecars(&opts.out, &plans, opts.threads)?
    };
    if opts.strict {
        // A scan whose current record leaves a row out would do so again:
        // fail before the cache is touched.
        let first = plans
            .iter()
            .filter_map(|p| first_unbuilt(p, done.get(&p.uid)?))
            .min_by_key(|u| u.line);
        if let Some(u) = first {
            return Err(u.strict_error(&candidates_csv, "the cache is unchanged"));
        }
    }
    let todo: Vec<&ScanPlan> = plans
        .iter()
        .filter(|p| !done.contains_key(&p.uid))
        .collect();
    if todo.is_empty() && read_manifest(&opts.out).is_ok_and(|m| m.inputs_fingerprint == inputs) {
        // The list is rewritten (when it differs) even so: its lines and CSV
        // name are not part of the inputs, and older caches have none.
        let skipped = skipped_rows(&list, &done)?;
        let skipped_csv = write_skipped(&opts.out, &candidates_csv, &skipped)?;
        println!(
            "{}: up to date ({} scans, {} candidates); nothing to do",
            opts.out.display(),
            plans.len(),
            list.candidates.len()
        );
        print_skipped(&skipped_csv, &candidates_csv, &skipped);
        return Ok(BuildStatus::UpToDate);
    }

    let reused = done.len();
    let strict_csv = opts.strict.then_some(candidates_csv.as_path());
    let outcome = build_scans(&todo, &opts.out, &params, opts.threads, stop, strict_csv)?;
    let mut built_bytes_in = 0;
    for s in outcome.sidecars {
        built_bytes_in += s.input_bytes;
        done.insert(s.series_uid.clone(), s);
    }
    if let Some(e) = outcome.error {
        return Err(e);
    }
    if stop.load(Ordering::SeqCst) {
        eprintln!(
            "interrupted: {} of {} scans are done and kept; rerun the same command to resume",
            done.len(),
            plans.len()
        );
        return Ok(BuildStatus::Interrupted);
    }

    let contents = assemble(
        &list.candidates,
        &done,
        &opts.codec,
        inputs,
        list.missing_series,
        list.missing_candidates,
    )?;
    // Before the manifest, so a complete cache always has its list.
    let skipped = skipped_rows(&list, &done)?;
    let skipped_csv = write_skipped(&opts.out, &candidates_csv, &skipped)?;
    let manifest = finalize(&opts.out, contents)?;
    let kept: Vec<&Sidecar> = plans.iter().filter_map(|p| done.get(&p.uid)).collect();
    out_dir::remove_unused_files(&opts.out, &kept)?;
    print_summary(&Summary {
        out: &opts.out,
        manifest: &manifest,
        csv: &candidates_csv,
        csv_rows,
        parse_time,
        list_time,
        scans: plans.len(),
        built: todo.len(),
        reused,
        bytes_in: built_bytes_in,
        candidates_built: todo.iter().map(|p| p.candidates.len()).sum(),
        wall: started.elapsed(),
    });
    print_skipped(&skipped_csv, &candidates_csv, &skipped);
    Ok(BuildStatus::Built)
}

/// The first (lowest-line) candidate row of a scan that its build record
/// leaves out of the cache.
struct Unbuilt<'a> {
    uid: &'a str,
    line: u64,
    reason: &'a str,
}

impl Unbuilt<'_> {
    fn strict_error(&self, csv: &Path, state: &str) -> anyhow::Error {
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
fn first_unbuilt<'a>(plan: &'a ScanPlan, sidecar: &'a Sidecar) -> Option<Unbuilt<'a>> {
    match &sidecar.outcome {
        ScanOutcome::Failed { reason } => {
            plan.candidates
                .iter()
                .map(|c| c.line)
                .min()
                .map(|line| Unbuilt {
                    uid: &plan.uid,
                    line,
                    reason,
                })
        }
        ScanOutcome::Built { rows, .. } => rows
            .iter()
            .zip(&plan.candidates)
            .filter_map(|(row, c)| match &row.result {
                RowResult::Skipped { reason } => Some(Unbuilt {
                    uid: &plan.uid,
                    line: c.line,
                    reason,
                }),
                RowResult::Stored { .. } => None,
            })
            .min_by_key(|u| u.line),
    }
}

/// One candidate row of the CSV that is not in the cache.
struct SkippedRow<'a> {
    uid: &'a str,
    line: u64,
    reason: &'a str,
}

const NOT_ON_DISK: &str = "scan not found on disk (no subset*/<seriesuid>.mhd in the data folder)";

/// Every candidate row left out, in CSV line order: rows of scans not on
/// disk, every row of an unusable scan, and rows whose centre is outside
/// their volume.
fn skipped_rows<'a>(
    list: &'a CandidateList,
    sidecars: &'a HashMap<String, Sidecar>,
) -> Result<Vec<SkippedRow<'a>>> {
    let mut rows: Vec<SkippedRow> = list
        .missing
        .iter()
        .map(|m| SkippedRow {
            uid: &m.series_uid,
            line: m.line,
            reason: NOT_ON_DISK,
        })
        .collect();
    for (c, fate) in list
        .candidates
        .iter()
        .zip(fates(&list.candidates, sidecars)?)
    {
        let reason = match fate {
            Fate::ScanFailed(reason) => reason,
            Fate::Row(Row {
                result: RowResult::Skipped { reason },
                ..
            }) => reason,
            Fate::Row(_) => continue,
        };
        rows.push(SkippedRow {
            uid: &c.series_uid,
            line: c.line,
            reason,
        });
    }
    rows.sort_by_key(|r| r.line);
    Ok(rows)
}

/// Write `CACHE/skipped.csv` (`seriesuid,csv,line,reason`; the header alone
/// when nothing was left out), unless it already holds exactly this, so
/// that a no-op rebuild leaves the cache untouched.
fn write_skipped(out: &Path, csv: &Path, rows: &[SkippedRow]) -> Result<PathBuf> {
    let path = out.join(SKIPPED_FILE);
    let csv_name = csv.to_string_lossy();
    let csv_name = csv_field(&csv_name);
    let mut text = String::from("seriesuid,csv,line,reason\n");
    for r in rows {
        text.push_str(&csv_field(r.uid));
        text.push(',');
        text.push_str(&csv_name);
        text.push(',');
        text.push_str(&r.line.to_string());
        text.push(',');
        text.push_str(&csv_field(r.reason));
        text.push('\n');
    }
    if fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(path);
    }
    write_atomically(&path, text.as_bytes())?;
    Ok(path)
}

/// A CSV field, quoted (RFC 4180) when it holds a separator, quote or newline.
fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// How many skipped rows the end of a build shows; the rest are in the file.
const SKIPPED_SHOWN: usize = 5;

fn print_skipped(skipped_csv: &Path, csv: &Path, rows: &[SkippedRow]) {
    if rows.is_empty() {
        println!(
            "  not cached  0 rows of {} ({} lists none)",
            csv.display(),
            skipped_csv.display()
        );
        return;
    }
    println!(
        "  not cached  {} row(s) of {}, all listed in {}{}",
        rows.len(),
        csv.display(),
        skipped_csv.display(),
        if rows.len() > SKIPPED_SHOWN {
            format!("; the first {SKIPPED_SHOWN}:")
        } else {
            ":".to_owned()
        }
    );
    for r in rows.iter().take(SKIPPED_SHOWN) {
        println!("    line {}: {}: {}", r.line, r.uid, r.reason);
    }
}

/// The scans whose resume record is still true: same inputs, and a shard
/// on disk with every recorded frame intact. Read in parallel (it reads
/// every shard once).
fn fresh_sidecars(
    out: &Path,
    plans: &[ScanPlan],
    threads: usize,
) -> Result<HashMap<String, Sidecar>> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the worker threads")?;
    Ok(pool.install(|| {
        plans
            .par_iter()
            .filter_map(|p| {
                Sidecar::load_fresh(out, &p.uid, &p.fingerprint).map(|s| (p.uid.clone(), s))
            })
            .collect()
    }))
}

struct ScansOutcome {
    sidecars: Vec<Sidecar>,
    error: Option<anyhow::Error>,
}

/// `strict`: the candidates CSV, when the first row left out must stop the
/// build (no new scans start; those in progress finish and are kept).
fn build_scans(
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
    let total_candidates: usize = order.iter().map(|p| p.candidates.len()).sum();
    let bar = progress_bar(total_candidates as u64);
    let started = Instant::now();
    let (scans_done, bytes_done) = (AtomicUsize::new(0), AtomicU64::new(0));
    let update_message = || {
        let mb = bytes_done.load(Ordering::Relaxed) as f64 / 1e6;
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "scans {}/{} · {:.0} MB/s",
            scans_done.load(Ordering::Relaxed),
            order.len(),
            mb / secs
        ));
    };
    update_message();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|k| format!("prepcache-{k}"))
        .build()
        .context("starting the worker threads")?;
    let limiter = Limiter::new(threads + 1);
    let spares = scan::SpareBuffers::default();
    let sidecars = Mutex::new(Vec::new());
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let tick = || bar.inc(1);
    let fail = |uid: &str, e: anyhow::Error| {
        stop.store(true, Ordering::SeqCst);
        lock(&error).get_or_insert(e.context(format!("writing the cache for scan {uid}")));
    };
    let fail_strict = |e: anyhow::Error| {
        stop.store(true, Ordering::SeqCst);
        lock(&error).get_or_insert(e);
    };
    std::thread::scope(|threads_scope| {
        // Workers crop and compress; one sealer thread makes each finished
        // shard durable and records it (scan::PendingScan::seal). Bounded, so
        // a slow disk holds the workers back instead of piling up open shards.
        let (pending_tx, pending_rx) =
            mpsc::sync_channel::<(&ScanPlan, scan::PendingScan)>(threads + 1);
        let (sidecars, bar, update_message, fail) = (&sidecars, &bar, &update_message, &fail);
        let (scans_done, bytes_done, fail_strict) = (&scans_done, &bytes_done, &fail_strict);
        threads_scope.spawn(move || {
            for (plan, pending) in pending_rx {
                let uid = pending.series_uid().to_owned();
                match pending.seal(out) {
                    Ok(sc) => {
                        if let Some(csv) = strict {
                            if let Some(u) = first_unbuilt(plan, &sc) {
                                fail_strict(u.strict_error(
                                    csv,
                                    "the scans finished so far are kept for the next build, the cache is as it was",
                                ));
                            }
                        }
                        report_scan(bar, &sc);
                        scans_done.fetch_add(1, Ordering::Relaxed);
                        bytes_done.fetch_add(sc.input_bytes, Ordering::Relaxed);
                        update_message();
                        lock(sidecars).push(sc);
                    }
                    Err(e) => fail(&uid, e),
                }
            }
        });
        pool.in_place_scope(|s| {
            for plan in &order {
                let permit = limiter.acquire();
                if stop.load(Ordering::SeqCst) {
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
                        Err(e) => fail(&plan.uid, e),
                    }
                });
            }
        });
        drop(pending_tx);
    });
    bar.finish_and_clear();
    let error = error.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(ScansOutcome {
        sidecars: sidecars.into_inner().unwrap_or_else(|p| p.into_inner()),
        error,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

/// What a candidate's build record says about it.
enum Fate<'a> {
    /// Its whole scan could not be used.
    ScanFailed(&'a str),
    Row(&'a Row),
}

/// Each candidate's [`Fate`], in the candidate list's (canonical) order:
/// each scan's rows are that scan's candidates in the same order, so a
/// cursor per scan pairs them up.
fn fates<'a>(
    candidates: &[CandidateInfo],
    sidecars: &'a HashMap<String, Sidecar>,
) -> Result<Vec<Fate<'a>>> {
    let mut cursor: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        let uid = c.series_uid.as_str();
        let Some(sc) = sidecars.get(uid) else {
            bail!("internal error: no build record for scan {uid}");
        };
        let rows = match &sc.outcome {
            ScanOutcome::Failed { reason } => {
                out.push(Fate::ScanFailed(reason));
                continue;
            }
            ScanOutcome::Built { rows, .. } => rows,
        };
        let k = cursor.entry(uid).or_insert(0);
        let Some(row) = rows.get(*k) else {
            bail!("internal error: build record of scan {uid} has fewer rows than its candidates");
        };
        *k += 1;
        if row.center_xyz != c.center_xyz || row.is_nodule != c.is_nodule {
            bail!("internal error: build record of scan {uid} does not match its candidates");
        }
        out.push(Fate::Row(row));
    }
    Ok(out)
}

/// Merge the per-scan sidecars into the index, in the candidate list's
/// (canonical) order.
fn assemble(
    candidates: &[CandidateInfo],
    sidecars: &HashMap<String, Sidecar>,
    codec: &Codec,
    inputs_fingerprint: String,
    missing_series: usize,
    missing_candidates: usize,
) -> Result<CacheContents> {
    let mut series: Vec<String> = Vec::new();
    let mut shards: Vec<ShardInfo> = Vec::new();
    let mut number: BTreeMap<&str, u32> = BTreeMap::new();
    let mut uids: Vec<&String> = sidecars.keys().collect();
    uids.sort();
    for uid in uids {
        let sidecar = &sidecars[uid];
        if let ScanOutcome::Built {
            shard_bytes, rows, ..
        } = &sidecar.outcome
        {
            if rows
                .iter()
                .any(|r| matches!(r.result, RowResult::Stored { .. }))
            {
                let Some(path) = sidecar.shard_index_path() else {
                    bail!("internal error: build record of scan {uid} names no shard");
                };
                number.insert(uid, series.len() as u32);
                series.push(uid.clone());
                shards.push(ShardInfo {
                    path,
                    bytes: *shard_bytes,
                });
            }
        }
    }
    let mut entries = Vec::with_capacity(candidates.len());
    let mut skipped = Vec::new();
    let mut failed_reported: Vec<&str> = Vec::new();
    for (c, fate) in candidates.iter().zip(fates(candidates, sidecars)?) {
        let uid = c.series_uid.as_str();
        let row = match fate {
            Fate::ScanFailed(reason) => {
                if !failed_reported.contains(&uid) {
                    failed_reported.push(uid);
                    skipped.push(Skipped {
                        series_uid: uid.to_owned(),
                        center_xyz: None,
                        reason: reason.to_owned(),
                    });
                }
                continue;
            }
            Fate::Row(row) => row,
        };
        match &row.result {
            RowResult::Stored {
                center_irc,
                offset,
                length,
                crc32,
            } => {
                let n = number[uid];
                entries.push(Entry {
                    series: n,
                    center_xyz: c.center_xyz,
                    center_irc: *center_irc,
                    is_nodule: c.is_nodule,
                    diameter_mm: c.diameter_mm,
                    shard: n,
                    offset: *offset,
                    length: *length,
                    crc32: *crc32,
                });
            }
            RowResult::Skipped { reason } => skipped.push(Skipped {
                series_uid: uid.to_owned(),
                center_xyz: Some(c.center_xyz),
                reason: reason.clone(),
            }),
        }
    }
    Ok(CacheContents {
        tool: TOOL.to_owned(),
        codec: *codec,
        crop_shape: CROP_SHAPE,
        series,
        shards,
        entries,
        skipped,
        missing_series,
        missing_candidates,
        inputs_fingerprint,
    })
}

struct Summary<'a> {
    out: &'a Path,
    manifest: &'a Manifest,
    csv: &'a Path,
    csv_rows: usize,
    parse_time: Duration,
    list_time: Duration,
    scans: usize,
    built: usize,
    reused: usize,
    bytes_in: u64,
    candidates_built: usize,
    wall: Duration,
}

fn print_summary(s: &Summary) {
    let m = s.manifest;
    let secs = s.wall.as_secs_f64().max(1e-6);
    let failed_scans = m.skipped.iter().filter(|k| k.center_xyz.is_none()).count();
    let skipped_candidates = m.skipped.len() - failed_scans;
    println!("{}: cache complete", s.out.display());
    println!(
        "  csv         {} rows of {}, parsed in {:.2} s, listed and sorted in {:.2} s",
        s.csv_rows,
        s.csv.display(),
        s.parse_time.as_secs_f64(),
        s.list_time.as_secs_f64()
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
