//! `train`: trains LunaModel from a prepcache cache with libtorch.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use train::cli::{Cli, Command};
use train::{bench_loader, bench_step, doctor, eval_checkpoint, fit, predict};

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Doctor) => doctor::print(&doctor::report()),
        Some(Command::BenchLoader(a)) => {
            let report = bench_loader::run(&bench_loader::BenchLoaderOptions {
                cache: a.cache,
                max_workers: a.num_workers as usize,
                batch_size: a.batch_size as usize,
                balanced: a.balanced.map(|r| r as usize),
                samples: a.samples,
                device: fit::parse_device(&a.device)?,
                seed: 0,
            })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                bench_loader::print(&report);
            }
        }
        Some(Command::BenchStep(a)) => {
            if let Some(n) = a.threads {
                tch::set_num_threads(n);
            }
            let device = fit::parse_device(&a.device)?;
            for figure in bench_step::run(&a.batch_sizes, a.steps, a.warmup, device) {
                println!("{}", serde_json::to_string(&figure)?);
            }
        }
        Some(Command::Eval(a)) => {
            eval_checkpoint::run(&a)?;
        }
        Some(Command::Predict(a)) => {
            predict::run(&a)?;
        }
        None => return train(&cli.train),
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C stops training between two batches, keeping the checkpoints of
/// finished epochs and saying how to resume; a second Ctrl-C quits at once.
fn train(args: &train::cli::TrainArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this batch (Ctrl-C again to quit now)");
    })
    .context("installing the Ctrl-C handler")?;
    match fit::run_until(args, &stop) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<fit::Interrupted>() {
            Some(interrupted) => {
                eprintln!("{}", interrupted.advice());
                Ok(ExitCode::from(130))
            }
            None => Err(e),
        },
    }
}
