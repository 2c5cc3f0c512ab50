//! `train [FLAGS] [COMMENT]`: a training run, fresh or resumed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::cli::TrainArgs;
use crate::run::{checkpoint, run_until, Interrupted, TrainPlan};

/// The run the flags ask for: a new one (defaults ← `--config` ← flags), or
/// `--resume` with the checkpoint's own settings.
pub fn plan(args: &TrainArgs) -> Result<TrainPlan> {
    let Some(resume) = &args.resume else {
        return Ok(TrainPlan {
            config: args.to_config()?,
            resume: None,
        });
    };
    let dir = checkpoint::checkpoint_dir(resume);
    let saved = checkpoint::read_state(&dir)
        .with_context(|| format!("reading the checkpoint to resume from {}", resume.display()))?;
    Ok(TrainPlan {
        config: args.resume_config(saved.config)?,
        resume: Some(dir),
    })
}

/// Ctrl-C stops training between two batches, keeping the checkpoints of
/// finished epochs and saying how to resume; a second Ctrl-C quits at once.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let plan = plan(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this batch (Ctrl-C again to quit now)");
    })
    .context("installing the Ctrl-C handler")?;
    match run_until(&plan, &stop) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(interrupted) => {
                eprintln!("{}", interrupted.advice());
                Ok(ExitCode::from(130))
            }
            None => Err(e),
        },
    }
}
