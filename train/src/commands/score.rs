//! `train score`: any LUNA16 submission scored exactly as the challenge's
//! own evaluation does, with `score.json`, `CADAnalysis.txt` and a FROC plot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::ScoreSubmissionArgs;
use crate::evaluate::luna16::{self, Bootstrap, Score, FP_RATES};
use crate::evaluate::plots::{write_froc_plot, FrocPlot};

pub const SCORE_FILE: &str = "score.json";
pub const CAD_ANALYSIS_FILE: &str = "CADAnalysis.txt";
pub const FROC_PLOT_FILE: &str = "froc.png";
/// At most this many scan uids are printed; the rest is a count.
const LISTED_SCANS: usize = 5;

/// What `train score` wrote.
#[derive(Debug)]
pub struct ScoreOutcome {
    pub score: Score,
    pub files: Vec<PathBuf>,
}

pub fn run(args: &ScoreSubmissionArgs) -> Result<ScoreOutcome> {
    if args.bootstrap > luna16::MAX_BOOTSTRAP {
        anyhow::bail!(
            "--bootstrap {}: at most {} resamples (each keeps 40 kB of FROC band; the official evaluation uses 1000)",
            args.bootstrap,
            luna16::MAX_BOOTSTRAP
        );
    }
    let annotations = luna16::read_annotations(&args.annotations)?;
    let excluded = match &args.annotations_excluded {
        Some(path) => luna16::read_findings(path)?,
        None => Vec::new(),
    };
    let marks = luna16::read_marks(&args.predictions)?;
    let scans = match &args.seriesuids {
        Some(path) => luna16::read_seriesuids(path)?,
        None => {
            let scans = luna16::default_scan_list(&annotations, &marks);
            println!(
                "score: {} scans (those of the annotations and the submission; give --seriesuids for the challenge's list)",
                scans.len()
            );
            scans
        }
    };
    let bootstrap = (args.bootstrap > 0).then_some(Bootstrap {
        n: args.bootstrap,
        seed: args.seed,
    });
    let score = luna16::score(&annotations, &excluded, &marks, &scans, bootstrap)
        .with_context(|| format!("scoring {}", args.predictions.display()))?;
    if score.unknown_scan_marks > 0 {
        println!(
            "score: warning: {} submission rows name scans outside the scan list; ignored, as the official script does",
            score.unknown_scan_marks
        );
    }
    print_missing_scans("score", &score.scans_without_marks);
    print_score_table("score", &score);
    let files = match &args.out {
        Some(dir) => write_outputs(dir, &score, &args.predictions)?,
        None => Vec::new(),
    };
    for f in &files {
        println!("score: wrote {}", f.display());
    }
    Ok(ScoreOutcome { score, files })
}

fn write_outputs(dir: &Path, score: &Score, predictions: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_path = dir.join(SCORE_FILE);
    let mut json = serde_json::to_vec_pretty(score).context("encoding score.json")?;
    json.push(b'\n');
    shared::durable::write_atomically(&json_path, &json)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let system = predictions
        .file_stem()
        .map_or_else(|| "submission".into(), |s| s.to_string_lossy());
    let cad_path = dir.join(CAD_ANALYSIS_FILE);
    shared::durable::write_atomically(&cad_path, luna16::cad_analysis(score, &system).as_bytes())
        .with_context(|| format!("writing {}", cad_path.display()))?;
    let plot_path = dir.join(FROC_PLOT_FILE);
    write_froc_plot(&plot_path, &FrocPlot::of(score, "of the submission"))?;
    Ok(vec![json_path, cad_path, plot_path])
}

/// The scans with nodules and no mark (or no prediction): their nodules
/// count as missed, which a user should know about.
pub fn print_missing_scans(tool: &str, scans: &[String]) {
    if scans.is_empty() {
        return;
    }
    let shown: Vec<&str> = scans
        .iter()
        .take(LISTED_SCANS)
        .map(String::as_str)
        .collect();
    let more = scans.len().saturating_sub(LISTED_SCANS);
    println!(
        "{tool}: {} annotated scan(s) have no predictions: {}{}",
        scans.len(),
        shown.join(", "),
        if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        }
    );
}

/// Counts, sensitivities per rate (with the interval when bootstrapped) and the CPM.
pub fn print_score_table(tool: &str, score: &Score) {
    println!(
        "{tool}: {} scans, {} nodules, {} detected, {} false positives, {} marks ({} ignored on excluded findings, {} double hits)",
        score.scans,
        score.nodules,
        score.detected,
        score.false_positives,
        score.marks,
        score.ignored_excluded,
        score.ignored_double_hits
    );
    println!("{tool}: FPs/scan     sensitivity");
    for (k, rate) in FP_RATES.iter().enumerate() {
        let interval = score.bootstrap.as_ref().map_or_else(String::new, |b| {
            let i = &b.sensitivities[k];
            format!("   95% [{:.3}, {:.3}]", i.lower, i.upper)
        });
        println!(
            "{tool}: {rate:>8}     {:.4}{interval}",
            score.sensitivities[k]
        );
    }
    println!("{tool}: CPM {:.4}", score.cpm);
}
