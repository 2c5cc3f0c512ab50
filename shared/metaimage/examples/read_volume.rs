//! Benchmark: `read_volume` on each scan against `cat scan.raw > /dev/null`.
//!
//! Both are timed on the same files in the same process, alternating, best of
//! `--repeats`, after one untimed pass that pulls every file into the page
//! cache (so the figures are warm-cache figures). One JSON object per scan
//! on stdout; `scripts/bench.sh` turns them into BENCHMARKS.md.
//!
//!     cargo run --release -p metaimage --example read_volume -- [--repeats N] SCAN.mhd...
//!
//! Four timings per scan: `cat` (the bound), `read_volume` as a caller with
//! no buffer gets it (fresh allocation, page faults included),
//! `read_volume_reusing` with the previous scan's buffer (what a loop over
//! many scans does), and `open_scan` (memory-mapped) followed by one pass
//! that reads every voxel clipped to [-1000, 1000], which is how prepcache
//! reads scans: nothing is copied, every voxel is still read.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use metaimage::volume::Scan;
use metaimage::{open_scan, read_header, read_volume, read_volume_reusing, DataFile};

/// The HU window prepcache's crops are clipped to (`shared::hu`); the crate
/// itself reads values as stored.
const WINDOW: (i16, i16) = (-1000, 1000);

fn main() {
    if let Err(e) = run() {
        eprintln!("read_volume: {e}");
        std::process::exit(1);
    }
}

struct Args {
    repeats: usize,
    scans: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut repeats = 3;
    let mut scans = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--repeats" {
            let n = args.next().ok_or("--repeats needs a value")?;
            repeats = n.parse().map_err(|_| format!("bad --repeats {n:?}"))?;
        } else {
            scans.push(PathBuf::from(arg));
        }
    }
    if scans.is_empty() || repeats == 0 {
        return Err("usage: read_volume [--repeats N] SCAN.mhd...".into());
    }
    Ok(Args { repeats, scans })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let raws = args
        .scans
        .iter()
        .map(|mhd| raw_file(mhd))
        .collect::<Result<Vec<_>, _>>()?;
    for raw in &raws {
        cat(raw)?;
    }
    let mut recycled = Vec::new();
    for (mhd, raw) in args.scans.iter().zip(&raws) {
        let bytes = std::fs::metadata(raw)
            .map_err(|e| format!("{}: {e}", raw.display()))?
            .len();
        let mut best_cat = Duration::MAX;
        let mut best_fresh = Duration::MAX;
        let mut best_reused = Duration::MAX;
        let mut best_mapped = Duration::MAX;
        let mut shape = [0; 3];
        for _ in 0..args.repeats {
            best_cat = best_cat.min(cat(raw)?);

            let start = Instant::now();
            let volume = read_volume(mhd).map_err(|e| e.to_string())?;
            best_fresh = best_fresh.min(start.elapsed());
            shape = volume.shape;
            // The fresh buffer is dropped outside the timed region: a caller
            // that keeps the volume never pays for freeing it while reading.
            drop(volume);

            let start = Instant::now();
            let volume = read_volume_reusing(mhd, std::mem::take(&mut recycled))
                .map_err(|e| e.to_string())?;
            best_reused = best_reused.min(start.elapsed());
            recycled = volume.voxels;

            let start = Instant::now();
            let sum = mapped_pass(mhd)?;
            best_mapped = best_mapped.min(start.elapsed());
            std::hint::black_box(sum);
        }
        let line = serde_json::json!({
            "scan": mhd.file_stem().map(|s| s.to_string_lossy()),
            "shape_irc": shape,
            "raw_bytes": bytes,
            "cat_s": best_cat.as_secs_f64(),
            "read_volume_s": best_fresh.as_secs_f64(),
            "read_volume_reusing_s": best_reused.as_secs_f64(),
            "open_scan_pass_s": best_mapped.as_secs_f64(),
        });
        println!("{line}");
    }
    Ok(())
}

/// `open_scan`, then the sum of every voxel clipped to `WINDOW`: a pass that
/// must read the whole scan, as cheap per voxel as a pass can be.
fn mapped_pass(mhd: &Path) -> Result<i64, String> {
    let scan = open_scan(mhd).map_err(|e| e.to_string())?;
    let Scan::Mapped(mapped) = &scan else {
        return Err(format!("{}: not memory-mappable", mhd.display()));
    };
    let voxels = mapped
        .voxels()
        .ok_or_else(|| format!("{}: voxels not viewable in place", mhd.display()))?;
    // i32 sums over chunks that cannot overflow (2^16 × 1000 < 2^31) let
    // the compiler vectorise; an i64 running sum would not, and costs 4×.
    Ok(voxels
        .chunks(1 << 16)
        .map(|c| {
            let s: i32 = c
                .iter()
                .map(|&v| i32::from(v.clamp(WINDOW.0, WINDOW.1)))
                .sum();
            i64::from(s)
        })
        .sum())
}

/// The single data file an uncompressed LUNA header points at.
fn raw_file(mhd: &Path) -> Result<PathBuf, String> {
    let header = read_header(mhd).map_err(|e| e.to_string())?;
    match &header.data_file {
        DataFile::File(name) => Ok(mhd.parent().unwrap_or(Path::new(".")).join(name)),
        other => Err(format!(
            "{}: ElementDataFile {other:?} is not one plain data file; this benchmark compares against `cat` of one file",
            mhd.display()
        )),
    }
}

/// `cat path > /dev/null`, timed from spawn to exit.
fn cat(path: &Path) -> Result<Duration, String> {
    let null = File::create("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    let start = Instant::now();
    let status = Command::new("cat")
        .arg(path)
        .stdout(Stdio::from(null))
        .status()
        .map_err(|e| format!("running cat: {e}"))?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("cat {} failed: {status}", path.display()));
    }
    Ok(elapsed)
}
