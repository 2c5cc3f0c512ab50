//! `train [FLAGS] [COMMENT]`: a training run, fresh or resumed.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use shared::signals::{self, Second};

use crate::cli::TrainArgs;
use crate::config::resolve::resolve;
use crate::config::RunConfig;
use crate::run::{checkpoint, run_dir, run_until, Interrupted, RunOutcome, TrainPlan};

/// The run the flags ask for: a new one (defaults ← `--config` ← flags), or
/// `--resume` with the checkpoint's own settings.
pub fn plan(args: &TrainArgs) -> Result<TrainPlan> {
    plan_on(args, RunConfig::default())
}

/// [`plan`] with `base` in place of the defaults (a task's preset).
pub fn plan_on(args: &TrainArgs, base: RunConfig) -> Result<TrainPlan> {
    let Some(resume) = &args.resume else {
        return Ok(TrainPlan {
            config: args.to_config_on(base)?,
            ..TrainPlan::default()
        });
    };
    let dir = run_dir::resume_folder(&checkpoint::checkpoint_dir(resume))?;
    let saved = checkpoint::read_state(&dir)
        .with_context(|| format!("reading the checkpoint to resume from {}", resume.display()))?;
    Ok(TrainPlan {
        config: args.resume_config(saved.config)?,
        resume: Some(dir),
        allow_other_cache: args.allow_other_cache,
    })
}

/// Ctrl-C or SIGTERM stops training between two batches, keeping the
/// checkpoints of finished epochs and saying how to resume; exit status 130
/// (SIGINT) or 143 (SIGTERM). A second one quits at once.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let plan = plan(args)?;
    drive(&plan, |plan, stop| {
        run_until(plan, resolve(&plan.config)?, stop)
    })
}

/// Runs `train` for `plan` under the stop signals and a SIGBUS message
/// naming its cache; an interrupted run says how to resume.
pub fn drive(
    plan: &TrainPlan,
    train: impl FnOnce(&TrainPlan, &AtomicBool) -> Result<RunOutcome>,
) -> Result<ExitCode> {
    // Before the cache is mapped: a shard cut short under the run is a
    // SIGBUS, which should name the cache rather than say "Bus error".
    if let Some(cache) = &plan.config.data.cache {
        signals::exit_on_sigbus("train", cache).context("installing the SIGBUS handler")?;
    }
    let stops = signals::stop_on_signals(
        |what| {
            format!(
                "{}: stopping after this batch ({} to quit now)",
                what.name(),
                what.again()
            )
        },
        Second::Exits,
    )
    .context("installing the Ctrl-C/SIGTERM handler")?;
    match train(plan, &stops.requested) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(interrupted) => {
                eprintln!("{}", interrupted.advice());
                Ok(ExitCode::from(stops.exit_code()))
            }
            None => Err(e),
        },
    }
}
