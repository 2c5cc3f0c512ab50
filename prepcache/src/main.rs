//! `prepcache`: decode LUNA16 scans once into a compressed, memory-mappable
//! candidate cache, and inspect, list and verify such caches.

mod cache_build;
mod listing;
mod seg_build;
mod shard;
mod synth;
mod verify;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use shared::cache::{Codec, Filter};
use shared::scan_source::ScanSource;
use shared::signals::{self, Second};

#[derive(Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build (or resume, or update) a cache from a LUNA16 data directory.
    ///
    /// Each scan is decoded once; its candidates' 32×48×48 crops are stored as
    /// zstd frames in one shard per scan. Interrupted builds resume where they
    /// stopped; a rebuild redoes only the scans whose files, candidate rows or
    /// codec changed, and is a no-op when nothing did. Every candidate row
    /// of the CSV that is not cached (scan not on disk, unusable scan, centre
    /// outside the volume) is listed with its line and the reason in
    /// CACHE/skipped.csv (seriesuid,csv,line,reason).
    Build {
        /// Data directory holding subset*/<seriesuid>.mhd (+ .raw) and/or
        /// DICOM series at any depth (LIDC-IDRI's patient/study/series),
        /// and by default the candidates CSV and annotations.csv.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Cache directory to create or update.
        #[arg(long, value_name = "CACHE")]
        out: PathBuf,
        /// Candidates CSV (seriesuid,coordX,coordY,coordZ,class), e.g. the
        /// organisers' candidates_V2.csv [default: DIR/candidates.csv; where
        /// that is absent, DIR/candidates_V2.csv or
        /// DIR/candidates_V2/candidates_V2.csv]
        #[arg(long, value_name = "CSV")]
        candidates: Option<PathBuf>,
        /// annotations.csv [default: DIR/annotations.csv]
        #[arg(long, value_name = "CSV")]
        annotations: Option<PathBuf>,
        /// Worker threads; at most threads+1 scans are in memory at once
        /// [default: all cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// zstd compression level, -7 to 19. Negative levels are zstd's fast
        /// modes: the default -1 builds ~1.5× and reads ~2× faster than 1 for
        /// ~14% more bytes; above 1 CT crops barely shrink further.
        #[arg(long, value_name = "L", default_value_t = Codec::DEFAULT_LEVEL,
              allow_negative_numbers = true,
              value_parser = clap::value_parser!(i32).range(-7..=19))]
        level: i32,
        /// Byte filter applied before zstd.
        #[arg(long, value_enum, default_value_t = FilterArg::ByteShuffle)]
        filter: FilterArg,
        /// Rebuild every scan, ignoring what an earlier build left.
        #[arg(long)]
        force: bool,
        /// Fail at the first candidate row that cannot be cached (scan not
        /// on disk, unusable scan, centre outside the volume), naming the
        /// series, CSV and line, instead of listing it in skipped.csv. Scans
        /// not on disk are caught before anything is written; otherwise the
        /// scans finished so far are kept for the next build and the cache
        /// that was there is left as it was.
        #[arg(long)]
        strict: bool,
        /// Build only share K of N (1 ≤ K ≤ N) into --out, for a build spread
        /// over N machines (a job array) writing into one shared folder: a
        /// scan is the share its series uid hashes to. Shards run at the
        /// same time and never seal; afterwards the same command without
        /// --shard builds whatever a shard left undone and seals the cache,
        /// byte-identical to a build on one machine.
        #[arg(long, value_name = "K/N")]
        shard: Option<shard::Shard>,
    },
    /// Write chapter 13's segmentation cache: OUT/seg-train (one 8×96×96
    /// chunk per positive candidate of a training series) and OUT/seg-val
    /// (one 8×H×W chunk per slice of a validation series); planes 0-6 are
    /// HU slices, plane 7 the nodule mask.
    ///
    /// Scans and candidates are found as `build` finds them; the split is
    /// by series, every N-th series by uid being validation. Like `build`,
    /// it resumes where an interrupted run stopped (Ctrl-C, SIGTERM, kill,
    /// crash), rebuilds only the series whose scan, candidate rows, split or
    /// options changed, and is a no-op when nothing did. Left out and named
    /// in each sub-cache's manifest "skipped": unreadable scans, positives
    /// outside their scan or in a scan smaller than the crop, and training
    /// series without a positive (no crops). `prepcache verify OUT` checks
    /// both sub-caches.
    Seg {
        /// Data directory holding subset*/<seriesuid>.mhd (+ .raw) and/or
        /// DICOM series at any depth (LIDC-IDRI's patient/study/series),
        /// and by default the candidates CSV and annotations.csv.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Folder to write seg-train/ and seg-val/ into (created if needed).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Candidates CSV [default: as for `build`].
        #[arg(long, value_name = "CSV")]
        candidates: Option<PathBuf>,
        /// annotations.csv [default: DIR/annotations.csv]
        #[arg(long, value_name = "CSV")]
        annotations: Option<PathBuf>,
        /// Every N-th series (sorted by uid, from the first) is validation.
        #[arg(long, value_name = "N", default_value_t = 10)]
        val_stride: usize,
        /// Threads, each writing one series at a time; at most `threads`
        /// scans are in memory at once [default: all cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// zstd compression level, -7 to 19 (as for `build`).
        #[arg(long, value_name = "L", default_value_t = Codec::DEFAULT_LEVEL,
              allow_negative_numbers = true,
              value_parser = clap::value_parser!(i32).range(-7..=19))]
        level: i32,
        /// Build only share K of N (1 ≤ K ≤ N) into --out, for a build spread
        /// over N machines (a job array) writing into one shared folder: a
        /// scan is the share its series uid hashes to. Shards run at the
        /// same time and never seal; afterwards the same command without
        /// --shard builds whatever a shard left undone and seals the cache,
        /// byte-identical to a build on one machine.
        #[arg(long, value_name = "K/N")]
        shard: Option<shard::Shard>,
    },
    /// Re-read every chunk; check checksums, sizes and counts. Exit code 1 on
    /// any problem, naming each bad candidate. CACHE is a cache, or the
    /// folder `prepcache seg` wrote (both of its sub-caches are verified).
    Verify {
        cache: PathBuf,
        /// Threads [default: all cores].
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Summary of a cache (its manifest).
    Info {
        cache: PathBuf,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the candidates in canonical (book) order.
    Ls {
        cache: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic LUNA-like data set (scans + CSVs).
    Synth {
        /// Output data directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Number of series (scans).
        #[arg(long, value_name = "N", default_value_t = 12)]
        series: usize,
        #[arg(long, value_name = "S", default_value_t = 7)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = synth::PresetArg::Tiny)]
        preset: synth::PresetArg,
    },
    /// Print a scan's header (or a DICOM series' geometry) and a summary of
    /// its voxels.
    Inspect {
        /// A .mhd/.mha file, or a folder holding one DICOM series.
        #[arg(value_name = "FILE.mhd|DIR")]
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FilterArg {
    /// All low bytes, then all high bytes.
    ByteShuffle,
    /// Plain little-endian int16.
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Build {
            data,
            out,
            candidates,
            annotations,
            threads,
            level,
            filter,
            force,
            strict,
            shard,
        } => {
            let filter = match filter {
                FilterArg::ByteShuffle => Filter::ByteShuffle,
                FilterArg::None => Filter::None,
            };
            let opts = cache_build::BuildOptions {
                data,
                out,
                candidates,
                annotations,
                threads: threads.unwrap_or_else(default_threads).max(1),
                codec: Codec::zstd(filter, level),
                force,
                strict,
                shard,
            };
            build(&opts)
        }
        Command::Seg {
            data,
            out,
            candidates,
            annotations,
            val_stride,
            threads,
            level,
            shard,
        } => seg(&seg_build::SegOptions {
            data,
            out,
            candidates,
            annotations,
            val_stride,
            threads: threads.unwrap_or_else(default_threads).max(1),
            codec: Codec::zstd(Filter::ByteShuffle, level),
            shard,
        }),
        Command::Verify { cache, threads } => verify(&cache, threads),
        Command::Info { cache, json } => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            listing::info(&cache, json, &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls { cache, json } => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            listing::ls(&cache, json, &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Synth {
            out,
            series,
            seed,
            preset,
        } => {
            synth::run(&out, series, seed, preset)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { file } => inspect(&file),
    }
}

/// `prepcache build`: the first stop signal lets the scans in progress
/// finish (rerunning resumes), a second one quits at once.
fn build(opts: &cache_build::BuildOptions) -> Result<ExitCode> {
    let stops = signals::stop_on_signals(
        |what| {
            format!(
                "{}: finishing the scans in progress ({} to quit now)",
                what.name(),
                what.again()
            )
        },
        Second::Exits,
    )
    .context("installing the Ctrl-C/SIGTERM handler")?;
    match cache_build::run(opts, &stops.requested)? {
        cache_build::BuildStatus::UpToDate | cache_build::BuildStatus::Built => {
            Ok(ExitCode::SUCCESS)
        }
        cache_build::BuildStatus::Interrupted => Ok(ExitCode::from(stops.exit_code())),
    }
}

/// `prepcache seg`: as `build`, the first stop signal lets the series in
/// progress finish (rerunning resumes), a second one quits at once.
fn seg(opts: &seg_build::SegOptions) -> Result<ExitCode> {
    let stops = signals::stop_on_signals(
        |what| {
            format!(
                "{}: finishing the series in progress ({} to quit now)",
                what.name(),
                what.again()
            )
        },
        Second::Exits,
    )
    .context("installing the Ctrl-C/SIGTERM handler")?;
    match seg_build::run(opts, &stops.requested)? {
        seg_build::SegStatus::UpToDate(report) => seg_build::print_up_to_date(&report),
        seg_build::SegStatus::Built(report) => seg_build::print_summary(&report),
        seg_build::SegStatus::ShardDone(report) => seg_build::print_share(&report),
        seg_build::SegStatus::Interrupted => return Ok(ExitCode::from(stops.exit_code())),
    }
    Ok(ExitCode::SUCCESS)
}

/// `prepcache verify`: exit code 1 on any problem, each one named.
fn verify(cache: &Path, threads: Option<usize>) -> Result<ExitCode> {
    shared::signals::exit_on_sigbus("prepcache verify", cache)
        .context("installing the SIGBUS handler")?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()?;
    let problems = pool.install(|| verify::verify(cache))?;
    if problems.is_empty() {
        println!("{}: OK", cache.display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("{p}");
    }
    eprintln!("{}: {} problem(s)", cache.display(), problems.len());
    Ok(ExitCode::FAILURE)
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `prepcache inspect`: a MetaImage file's header, or a DICOM series'
/// geometry, and the voxels' summary.
fn inspect(path: &Path) -> Result<ExitCode> {
    let text = match ScanSource::at(path)? {
        // The header as written, beside the summary.
        ScanSource::MetaImage(file) => shared::metaimage::inspect(file)?,
        series => shared::metaimage::inspect_volume(path, &series.read_volume()?),
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}
