//! `train compare`: runs (or whole sweeps) side by side, as a table of the
//! settings that differ and their best and last validation metrics.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::CompareArgs;
use crate::compare::{find_runs, table, Comparison, Run};

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
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.runs));
    let written = comparison.write(&out)?;
    let mut text = table::markdown(&comparison);
    text.push('\n');
    for path in &written {
        text.push_str(&format!("wrote {}\n", path.display()));
    }
    print_text(&text)?;
    Ok(written)
}

/// Prints `text`; a reader that stops early (`| head`) is no error: the
/// files are already written.
fn print_text(text: &str) -> Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The one folder compared (a sweep keeps its report), else `./compare`.
fn default_out(args: &[PathBuf]) -> PathBuf {
    match args {
        [only] if only.is_dir() => only.clone(),
        _ => Path::new(DEFAULT_OUT).to_owned(),
    }
}
