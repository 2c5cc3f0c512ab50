//! `train`: trains LunaModel from a prepcache cache with libtorch.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use train::commands;
use train::config::cli::{Cli, Command};

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    // Before libtorch allocates anything: see host_memory.rs.
    train::host_memory::keep_freed_memory();
    match &cli.command {
        Some(Command::Doctor) => commands::doctor::print(&commands::doctor::report()),
        Some(Command::BenchLoader(a)) => commands::bench::loader(a)?,
        Some(Command::BenchStep(a)) => commands::bench::step(a)?,
        Some(Command::Eval(a)) => {
            commands::eval::run(a)?;
        }
        Some(Command::Predict(a)) => {
            commands::predict::run(a)?;
        }
        Some(Command::Score(a)) => {
            commands::score::run(a)?;
        }
        Some(Command::Sweep(a)) => return commands::sweep::run(a),
        Some(Command::Compare(a)) => {
            commands::compare::run(a)?;
        }
        None => return commands::train::run(&cli.train),
    }
    Ok(ExitCode::SUCCESS)
}
