//! Evaluation of a trained classifier on cached candidates: ROC AUC,
//! precision–recall, LUNA16's FROC/CPM, probability histograms, and PNG plots.
//!
//! Pure arithmetic over per-candidate rows ([`Prediction`], [`Samples`]);
//! running the model is the caller's job. [`metrics`] is the one metrics
//! core that training's per-epoch lines use too, and [`metrics_log`] the
//! one writer and reader of those lines (metrics.jsonl). [`evaluate`]
//! gathers everything into an [`EvalReport`] that serialises to
//! `eval.json` and feeds [`plots::write_plots`].

pub mod detection;
pub mod luna16;
pub mod metrics;
pub mod metrics_log;
pub mod pixels;
pub mod plots;
pub mod roc;
pub mod select;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use detection::{score_predictions, DetectionError, DetectionReport, Reference};
pub use luna16::FP_RATES;
pub use metrics::{Confusion, EpochMetrics, MetricRows, Samples, THRESHOLD};
pub use metrics_log::{MetricsLine, MetricsLog, MetricsLogError, METRICS_FILE};
pub use plots::{write_plots, PlotError};
pub use roc::{average_precision, pr_curve, roc_auc, PrPoint};

/// The model's verdict on one cached candidate, with what scoring needs to know about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub prob_nodule: f32,
    pub is_nodule: bool,
    pub series_uid: String,
    pub center_xyz: [f64; 3],
    pub diameter_mm: f64,
}

impl Prediction {
    /// The row for cache entry `entry` (of series `series_uid`) scored `prob_nodule`.
    pub fn from_entry(entry: &shared::cache::Entry, series_uid: &str, prob_nodule: f32) -> Self {
        Prediction {
            prob_nodule,
            is_nodule: entry.is_nodule,
            series_uid: series_uid.to_owned(),
            center_xyz: entry.center_xyz,
            diameter_mm: entry.diameter_mm,
        }
    }
}

/// Counts of P(nodule) in equal bins over [0, 1], per true class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbabilityHistogram {
    pub bins: usize,
    pub negatives: Vec<u64>,
    pub positives: Vec<u64>,
}

impl ProbabilityHistogram {
    pub fn compute(predictions: &[Prediction], bins: usize) -> Self {
        let bins = bins.max(1);
        let mut negatives = vec![0; bins];
        let mut positives = vec![0; bins];
        for p in predictions {
            // Probability 1.0 belongs to the last bin, not one past it.
            let bin = ((f64::from(p.prob_nodule) * bins as f64) as usize).min(bins - 1);
            if p.is_nodule {
                positives[bin] += 1;
            } else {
                negatives[bin] += 1;
            }
        }
        ProbabilityHistogram {
            bins,
            negatives,
            positives,
        }
    }
}

pub const HISTOGRAM_BINS: usize = 50;

/// Everything `eval.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub candidates: usize,
    pub positives: usize,
    pub negatives: usize,
    /// `None` when a class is absent.
    pub roc_auc: Option<f64>,
    pub average_precision: Option<f64>,
    /// The book's metrics at P(nodule) > 0.5: on a run's own validation
    /// split, exactly the run's last validation line.
    pub at_half: EpochMetrics,
    pub pr_curve: Vec<PrPoint>,
    /// LUNA16's FROC/CPM over the scored candidates' scans.
    pub detection: DetectionReport,
    pub histogram: ProbabilityHistogram,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("candidate {index} ({series_uid}): P(nodule) is {value}, not a probability (did training diverge?)")]
    NotAProbability {
        index: usize,
        series_uid: String,
        value: f32,
    },
    #[error(transparent)]
    Detection(#[from] DetectionError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Scores `predictions` (with `samples`, the same candidates' label,
/// P(nodule) and loss rows); the FROC/CPM takes its nodules from
/// `reference`.
pub fn evaluate(
    predictions: &[Prediction],
    samples: &Samples,
    reference: &Reference,
) -> Result<EvalReport, EvalError> {
    if let Some((index, p)) = predictions
        .iter()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(&p.prob_nodule))
    {
        return Err(EvalError::NotAProbability {
            index,
            series_uid: p.series_uid.clone(),
            value: p.prob_nodule,
        });
    }
    let scores: Vec<f32> = predictions.iter().map(|p| p.prob_nodule).collect();
    let labels: Vec<bool> = predictions.iter().map(|p| p.is_nodule).collect();
    let positives = labels.iter().filter(|&&l| l).count();
    let curve = pr_curve(&scores, &labels);
    let detection = score_predictions(predictions, reference)?;
    Ok(EvalReport {
        candidates: predictions.len(),
        positives,
        negatives: predictions.len() - positives,
        roc_auc: roc_auc(&scores, &labels),
        average_precision: average_precision(&curve),
        at_half: EpochMetrics::compute(samples),
        pr_curve: curve,
        detection,
        histogram: ProbabilityHistogram::compute(predictions, HISTOGRAM_BINS),
    })
}

pub const REPORT_FILE: &str = "eval.json";

/// Writes `report` as pretty JSON to `dir/eval.json`; returns the path.
pub fn write_report(dir: &Path, report: &EvalReport) -> Result<PathBuf, EvalError> {
    let path = dir.join(REPORT_FILE);
    let io = |source| EvalError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let json = serde_json::to_vec_pretty(report).map_err(|e| io(e.into()))?;
    // Crash-safe: a failed write (a full disk) keeps the previous eval.json.
    shared::durable::write_atomically(&path, &json).map_err(|e| io(e.into()))?;
    Ok(path)
}

/// Rows for hand-made predictions in tests (loss 0).
#[cfg(test)]
pub(crate) fn samples_of(preds: &[Prediction]) -> Samples {
    Samples {
        labels: preds.iter().map(|p| p.is_nodule).collect(),
        prob_pos: preds.iter().map(|p| p.prob_nodule).collect(),
        loss: vec![0.0; preds.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(series: &str, x: f64, prob: f32, is_nodule: bool) -> Prediction {
        Prediction {
            prob_nodule: prob,
            is_nodule,
            series_uid: series.to_owned(),
            center_xyz: [x, 0.0, 0.0],
            diameter_mm: if is_nodule { 6.0 } else { 0.0 },
        }
    }

    #[test]
    fn report_of_a_perfect_classifier_and_its_json() {
        let preds = vec![
            pred("a", 0.0, 1.0, true),
            pred("a", 40.0, 0.2, false),
            pred("b", 0.0, 0.6, true),
            pred("b", 40.0, 0.4, false),
            pred("c", 40.0, 1.0e-3, false),
        ];
        let report = evaluate(&preds, &samples_of(&preds), &Reference::PositiveCandidates).unwrap();
        assert_eq!(
            (report.candidates, report.positives, report.negatives),
            (5, 2, 3)
        );
        assert_eq!(report.roc_auc, Some(1.0));
        assert_eq!(report.average_precision, Some(1.0));
        let score = report.detection.score.as_ref().unwrap();
        assert_eq!(score.scans, 3);
        assert_eq!(score.cpm, 1.0);
        assert_eq!(report.at_half.confusion.tp, 2);
        assert_eq!(report.at_half.f1, 1.0);
        assert_eq!(report.histogram.positives.iter().sum::<u64>(), 2);
        assert_eq!(report.histogram.positives[HISTOGRAM_BINS - 1], 1);
        assert_eq!(report.histogram.negatives[0], 1);

        let dir = tempfile::tempdir().unwrap();
        let path = write_report(dir.path(), &report).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["detection"]["score"]["cpm"], 1.0);
        assert_eq!(json["roc_auc"], 1.0);
        assert_eq!(
            json["detection"]["score"]["sensitivities"]
                .as_object()
                .unwrap()
                .len(),
            7
        );
    }

    #[test]
    fn a_nan_probability_is_an_error_naming_the_candidate() {
        let preds = vec![
            pred("a", 0.0, 0.5, true),
            pred("scan-x", 1.0, f32::NAN, false),
        ];
        let err = evaluate(&preds, &samples_of(&preds), &Reference::PositiveCandidates)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("candidate 1") && err.contains("scan-x"),
            "{err}"
        );
    }
}
