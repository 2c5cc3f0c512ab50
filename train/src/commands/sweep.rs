//! `train sweep SWEEP.toml`: plans the sweep's runs, runs what is not
//! finished a few at a time, and reports each as it ends.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use shared::lock::FolderLock;
use shared::signals::{self, Second};

use crate::cli::SweepArgs;
use crate::config::RunConfig;
use crate::run::RunKind;
use crate::sweep::plan::{self, Action, Job};
use crate::sweep::record::{Status, SweepRecord};
use crate::sweep::runner::{Event, Launcher, Outcome};
use crate::sweep::summary::{duration, LastVal};
use crate::sweep::Sweep;

pub fn run(args: &SweepArgs) -> Result<ExitCode> {
    let sweep = Sweep::load(&args.file)?;
    let seeds = plan::seeds(args.seeds.as_deref(), &sweep)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&sweep, &args.file));
    let jobs = plan::plan(&sweep, &seeds, &out, args.cache.as_deref())?;
    if let (Some(first), false) = (jobs.first(), args.dry_run) {
        check_cache(&first.config, sweep.file.task)?;
    }
    let to_run = jobs
        .iter()
        .filter(|j| !matches!(j.action, Action::Skip { .. }))
        .count();
    let launcher = launcher(args, sweep.file.task, to_run)?;
    println!(
        "sweep: {}: {} variants × {} seeds = {} runs ({} finished, {} to run, {} at a time with --threads {} each); results in {}",
        args.file.display(),
        sweep.variants.len(),
        seeds.len(),
        jobs.len(),
        jobs.len() - to_run,
        to_run,
        launcher.parallel,
        launcher.threads_per_run,
        out.display()
    );
    if args.dry_run {
        for job in &jobs {
            println!("sweep: {} seed {}: {}", job.variant, job.seed, intent(job));
        }
        return Ok(ExitCode::SUCCESS);
    }

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // Two sweeps in one folder would start the same runs twice.
    let _lock = FolderLock::acquire(&out, "train sweep")?;
    let mut record = SweepRecord::new(&sweep, &seeds, &jobs);
    write_record(&record, &out)?;
    report_skipped(&jobs, &record);
    let stops = signals::stop_on_signals(
        |what| {
            format!(
                "sweep: {}: the runs stop after their current batch, keeping finished epochs ({} to stop them at once)",
                what.name(),
                what.again()
            )
        },
        Second::Counted,
    )
    .context("installing the Ctrl-C/SIGTERM handler")?;

    let mut ended = 0;
    launcher.run_all(&jobs, &stops.count, |event| {
        record_event(&mut record, &jobs, event, &mut ended, to_run);
        write_record(&record, &out)
    })?;
    Ok(conclude(&record, &out, stops.exit_code()))
}

/// The runs' cache is one for their task, before any run starts: a
/// classifier cache, or a segmentation cache.
fn check_cache(config: &RunConfig, task: RunKind) -> Result<()> {
    match task {
        RunKind::Classify => config.cache()?,
        RunKind::Segment => config.seg_cache()?,
    };
    Ok(())
}

/// At most `--parallel` runs at once (no more than there are to run), the
/// threads shared out between them.
fn launcher(args: &SweepArgs, task: RunKind, to_run: usize) -> Result<Launcher> {
    let parallel = args.parallel.min(to_run).max(1);
    let total_threads = args.threads.unwrap_or_else(available_threads);
    Ok(Launcher {
        exe: std::env::current_exe().context("finding the train binary")?,
        task,
        threads_per_run: (total_threads / parallel as u32).max(1),
        parallel,
    })
}

fn report_skipped(jobs: &[Job], record: &SweepRecord) {
    for (job, run) in jobs.iter().zip(&record.runs) {
        if let Action::Skip { epoch, .. } = job.action {
            println!(
                "sweep: {} seed {}: skipped, finished ({epoch}/{} epochs): {}",
                job.variant,
                job.seed,
                job.config.run.epochs,
                describe(run.last_val)
            );
        }
    }
}

/// A run started or ended: its line on the terminal and its entry in the
/// record. `ended` counts the runs ended so far, of `to_run`.
fn record_event(
    record: &mut SweepRecord,
    jobs: &[Job],
    event: Event<'_>,
    ended: &mut usize,
    to_run: usize,
) {
    let index = |job: &Job| jobs.iter().position(|j| std::ptr::eq(j, job)).unwrap_or(0);
    match event {
        Event::Started { job } => {
            record.runs[index(job)].status = Status::Running;
            println!(
                "sweep: {} seed {}: {} (log {})",
                job.variant,
                job.seed,
                match job.action {
                    Action::Resume { epoch, .. } => format!("resuming after epoch {epoch}"),
                    _ => "started".to_owned(),
                },
                job.log_file().display()
            );
        }
        Event::Finished { job, outcome, wall } => {
            *ended += 1;
            let run = &mut record.runs[index(job)];
            run.run_dir = job.run_dir();
            run.last_val = run.run_dir.as_deref().and_then(LastVal::of_run);
            run.wall_s = Some(wall.as_secs_f64());
            run.status = match &outcome {
                Outcome::Done => Status::Done,
                Outcome::Interrupted => Status::Interrupted,
                Outcome::Failed(why) => {
                    run.error = Some(why.clone());
                    Status::Failed
                }
            };
            println!(
                "sweep: [{ended}/{to_run}] {} seed {}: {}",
                job.variant,
                job.seed,
                ending(&outcome, wall, run.last_val)
            );
        }
    }
}

/// The final lines: where the results are, what failed, how to go on.
/// `stopped_code`: the exit status if runs were left unfinished (the stop
/// signal's).
fn conclude(record: &SweepRecord, out: &Path, stopped_code: u8) -> ExitCode {
    let count = |s: Status| record.runs.iter().filter(|r| r.status == s).count();
    let (done, failed) = (count(Status::Done), count(Status::Failed));
    let stopped = record.runs.len() - done - failed;
    println!(
        "sweep: {done} of {} runs done, {failed} failed, {stopped} not finished; results in {} ({}); compare them: train compare {}",
        record.runs.len(),
        out.display(),
        out.join(crate::sweep::record::SWEEP_RECORD_FILE).display(),
        out.display()
    );
    for run in record.runs.iter().filter(|r| r.status == Status::Failed) {
        eprintln!(
            "sweep: failed: {} seed {}: {} (log {})",
            run.variant,
            run.seed,
            run.error.as_deref().unwrap_or(""),
            run.log.display()
        );
    }
    if stopped > 0 {
        eprintln!(
            "sweep: interrupted; finished epochs are checkpointed. To go on: {}",
            this_command()
        );
        ExitCode::from(stopped_code)
    } else if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn write_record(record: &SweepRecord, out: &Path) -> Result<()> {
    record
        .write(out)
        .with_context(|| format!("writing the sweep record in {}", out.display()))
}

fn intent(job: &Job) -> String {
    match &job.action {
        Action::Skip { epoch, .. } => format!(
            "finished ({epoch}/{} epochs), would skip",
            job.config.run.epochs
        ),
        Action::Resume { epoch, .. } => format!("would resume after epoch {epoch}"),
        Action::Start { .. } => "would start".to_owned(),
    }
}

fn ending(outcome: &Outcome, wall: Duration, last: Option<LastVal>) -> String {
    match outcome {
        Outcome::Done => format!("done in {}: {}", duration(wall), describe(last)),
        Outcome::Interrupted => format!("interrupted after {}", duration(wall)),
        Outcome::Failed(why) => format!("FAILED after {}: {why}", duration(wall)),
    }
}

fn describe(last: Option<LastVal>) -> String {
    last.map_or_else(|| "no validation line".to_owned(), |v| v.to_string())
}

/// `<base run.runs>/sweeps/<sweep file stem>`: with the other runs, out of
/// the folder the sweep file is in (which may be the repository's).
fn default_out(sweep: &Sweep, file: &Path) -> PathBuf {
    let runs = sweep
        .variants
        .first()
        .map(|v| v.config.run.runs.clone())
        .unwrap_or_else(|| PathBuf::from("runs"));
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".to_owned());
    runs.join("sweeps").join(stem)
}

fn available_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// This command line again, for the advice after an interrupt.
fn this_command() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                "train".to_owned()
            } else if a.contains([' ', '\'', '"']) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
