//! `train eval`: a checkpoint scored on a split of the cache, with the
//! book's metrics table and the challenge metrics, saved as `eval.json`
//! and PNG plots.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::score::{print_missing_scans, print_score_table};
use crate::cli::EvalArgs;
use crate::config::SplitBy;
use crate::data::split::Split;
use crate::evaluate::{self, EpochMetrics, EvalReport, Prediction, Reference};
use crate::run::checkpoint;

/// What `train eval` produced.
#[derive(Debug)]
pub struct EvalOutcome {
    /// One per candidate of the split, in cache order.
    pub predictions: Vec<Prediction>,
    pub report: EvalReport,
    pub metrics: EpochMetrics,
    pub report_file: PathBuf,
    pub plots: Vec<PathBuf>,
}

pub fn run(args: &EvalArgs) -> Result<EvalOutcome> {
    let (scorer, order) = super::open_scorer(&args.score, args.split, "eval")?;
    let reader = &scorer.reader;
    let samples = scorer.score(&order)?;

    let metrics = EpochMetrics::compute(&samples);
    // Epoch of the saved run when its trainer file is there (weights alone suffice).
    let epoch = checkpoint::read_state(&scorer.checkpoint_dir())
        .map(|s| s.epoch)
        .unwrap_or(0);
    println!("{}", metrics.table(epoch, args.split.log_name()));

    let entries = reader.entries();
    let predictions: Vec<Prediction> = order
        .iter()
        .zip(&samples.prob_pos)
        .map(|(&i, &p)| {
            let entry = &entries[i as usize];
            Prediction::from_entry(entry, reader.series_uid(entry.series), p)
        })
        .collect();
    let reference = match &args.annotations {
        Some(annotations) => Reference::Annotations {
            annotations: annotations.clone(),
            excluded: args.annotations_excluded.clone(),
        },
        None => Reference::PositiveCandidates,
    };
    let report = evaluate::evaluate(&predictions, &samples, &reference)?;
    print_summary(&report);
    if args.split != Split::All && args.score.split_by == SplitBy::Candidate {
        println!(
            "eval: note: the FROC is partial: a candidate-level {} split holds only part of each scan's candidates (val: 1 in {}, trn: the rest), so its sensitivities and CPM count only those; a run trained with --split-by series is scored on whole scans with --split-by series",
            args.split.log_name(),
            args.score.val_stride
        );
    }

    let out = args.out.clone().unwrap_or_else(|| scorer.checkpoint_dir());
    let report_file = evaluate::write_report(&out, &report)?;
    let plots = evaluate::write_plots(&out, &report)
        .with_context(|| format!("plotting into {}", out.display()))?;
    println!("eval: wrote {}", report_file.display());
    for plot in &plots {
        println!("eval: wrote {}", plot.display());
    }
    Ok(EvalOutcome {
        predictions,
        report,
        metrics,
        report_file,
        plots,
    })
}

fn print_summary(report: &EvalReport) {
    let opt = |v: Option<f64>| v.map_or("n/a (one class only)".to_owned(), |v| format!("{v:.4}"));
    println!(
        "eval: ROC AUC {}, average precision {}",
        opt(report.roc_auc),
        opt(report.average_precision)
    );
    let d = &report.detection;
    println!("eval: FROC nodules from {}", d.nodules_from);
    print_missing_scans("eval", &d.scans_without_predictions);
    match &d.score {
        Some(score) => print_score_table("eval", score),
        None => println!(
            "eval: FROC/CPM not scored: {}",
            d.not_scored.as_deref().unwrap_or("")
        ),
    }
}
