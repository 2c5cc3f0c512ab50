//! `train predict`: LUNA16 submission rows for every candidate of a split.
//!
//! The official format is `seriesuid,coordX,coordY,coordZ,probability`, one
//! row per candidate; rows follow the cache's (canonical) order. Only the
//! crops and the candidate coordinates are used, never `is_nodule`, so a
//! cache of an unlabelled test set works.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::PredictArgs;

pub const HEADER: &str = "seriesuid,coordX,coordY,coordZ,probability";

/// Scores the split and writes the CSV; returns its path and row count.
pub fn run(args: &PredictArgs) -> Result<(PathBuf, usize)> {
    let (scorer, order) = super::open_scorer(&args.score, args.split, "predict")?;
    let reader = &scorer.reader;
    let samples = scorer.score(&order)?;

    let entries = reader.entries();
    let mut csv = String::with_capacity(64 * (order.len() + 1));
    csv.push_str(HEADER);
    csv.push('\n');
    for (&i, &p) in order.iter().zip(&samples.prob_pos) {
        let entry = &entries[i as usize];
        let [x, y, z] = entry.center_xyz;
        // Rust's `{}` is the shortest text that reads back to the same value.
        let _ = writeln!(
            csv,
            "{},{x},{y},{z},{p}",
            shared::csv_write::field(reader.series_uid(entry.series))
        );
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    shared::durable::write_atomically(&args.out, csv.as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "predict: wrote {} rows to {}",
        order.len(),
        args.out.display()
    );
    Ok((args.out.clone(), order.len()))
}
