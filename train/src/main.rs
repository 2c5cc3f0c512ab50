//! `train`: trains LunaModel from a prepcache cache with libtorch.

use std::process::ExitCode;

use anyhow::Result;
use train::cli::{Cli, Command};
use train::commands;

/// Errors print as one line (`Error: context: cause`) whatever
/// `RUST_BACKTRACE` says: anyhow's `{:?}`, which `fn main() -> Result`
/// uses, would add a stack backtrace to every bad flag or missing file.
/// Backtraces are for bugs, which panic.
fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_args();
    // Before libtorch allocates anything: see host_memory.rs.
    train::host_memory::keep_freed_memory();
    match &cli.command {
        Some(Command::Doctor) => return Ok(commands::doctor::run()),
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
        Some(Command::Seg(a)) => return commands::seg::run(a),
        Some(Command::ImportState(a)) => {
            commands::import_state::run(a)?;
        }
        Some(Command::Analyze(a)) => {
            commands::analyze::run(a)?;
        }
        Some(Command::Compare(a)) => {
            commands::compare::run(a)?;
        }
        None => return commands::train::run(&cli.train),
    }
    Ok(ExitCode::SUCCESS)
}
