//! `train compare`: runs (or whole sweeps) side by side, as a table of the
//! settings that differ and their best and last validation metrics.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::cli::CompareArgs;
use crate::evaluate::compare::{find_runs, table, Comparison, Run};

/// Where the report goes without `--out`.
const DEFAULT_OUT: &str = "compare";

/// Prints the table and writes the report; returns the files written.
pub fn run(args: &CompareArgs) -> Result<Vec<PathBuf>> {
    let dirs = find_runs(&args.runs)?;
    let runs = dirs
        .iter()
        .map(|dir| Run::load(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let comparison = Comparison::new(runs);
    print!("{}", table::markdown(&comparison));
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.runs));
    let written = comparison.write(&out)?;
    println!();
    for path in &written {
        println!("wrote {}", path.display());
    }
    Ok(written)
}

/// The one folder compared (a sweep keeps its report), else `./compare`.
fn default_out(args: &[PathBuf]) -> PathBuf {
    match args {
        [only] if only.is_dir() => only.clone(),
        _ => Path::new(DEFAULT_OUT).to_owned(),
    }
}
