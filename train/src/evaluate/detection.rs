//! LUNA16 detection scoring of a model's verdicts on cached candidates,
//! through the official scorer ([`luna16`]), so `train eval` and
//! `train score` cannot disagree.
//!
//! The nodules are the rows of `annotations.csv` when it is given. Without
//! it, the only nodules known are the cache's positive candidates; their
//! distinct centres stand in for the annotations, and the report says so
//! (`nodules_from`), since that figure is not the challenge's.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::luna16::{self, Finding, InputError, Mark, Score, ScoreError};
use super::Prediction;

/// Where the reference nodules come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    /// LUNA16's `annotations.csv`, and `annotations_excluded.csv` if given.
    Annotations {
        annotations: PathBuf,
        excluded: Option<PathBuf>,
    },
    /// The distinct positive candidates of the scored list.
    PositiveCandidates,
}

/// The detection part of `eval.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionReport {
    /// `annotations.csv` (its path) or the positive-candidate stand-in.
    pub nodules_from: String,
    /// The official score; absent when it is undefined (no nodule in the
    /// scored scans), with the reason in `not_scored`.
    pub score: Option<Score>,
    pub not_scored: Option<String>,
    /// Scans of the annotations that no scored candidate belongs to (their
    /// nodules are not in this score).
    pub scans_without_predictions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Score(#[from] ScoreError),
}

/// The candidates as CAD marks: one per candidate, at its centre.
pub fn marks(predictions: &[Prediction]) -> Vec<Mark> {
    predictions
        .iter()
        .map(|p| Mark {
            seriesuid: p.series_uid.clone(),
            center: p.center_xyz,
            probability: f64::from(p.prob_nodule),
        })
        .collect()
}

/// The distinct (series, centre, diameter) of the positive candidates, in
/// first-seen order. A diameter the book's merge did not find (0) becomes
/// the challenge's "unknown" (-1, scored as 10 mm).
pub fn findings_from_positives(predictions: &[Prediction]) -> Vec<Finding> {
    let mut seen = HashSet::new();
    predictions
        .iter()
        .filter(|p| p.is_nodule)
        .filter(|p| {
            seen.insert((
                p.series_uid.clone(),
                p.center_xyz.map(f64::to_bits),
                p.diameter_mm.to_bits(),
            ))
        })
        .map(|p| Finding {
            seriesuid: p.series_uid.clone(),
            center: p.center_xyz,
            diameter_mm: if p.diameter_mm > 0.0 {
                p.diameter_mm
            } else {
                -1.0
            },
        })
        .collect()
}

/// Scores `predictions` over the scans they cover.
pub fn score_predictions(
    predictions: &[Prediction],
    reference: &Reference,
) -> Result<DetectionReport, DetectionError> {
    let (nodules, excluded, nodules_from) = match reference {
        Reference::Annotations {
            annotations,
            excluded,
        } => (
            luna16::read_annotations(annotations)?,
            match excluded {
                Some(path) => luna16::read_findings(path)?,
                None => Vec::new(),
            },
            annotations.display().to_string(),
        ),
        Reference::PositiveCandidates => (
            findings_from_positives(predictions),
            Vec::new(),
            "positive candidates of the cache (no --annotations given: not the challenge's figure)"
                .to_owned(),
        ),
    };
    let mut seen = HashSet::new();
    let scans: Vec<String> = predictions
        .iter()
        .map(|p| p.series_uid.clone())
        .filter(|uid| seen.insert(uid.clone()))
        .collect();
    let mut missing = HashSet::new();
    let scans_without_predictions: Vec<String> = nodules
        .iter()
        .filter(|f| !seen.contains(&f.seriesuid) && missing.insert(f.seriesuid.clone()))
        .map(|f| f.seriesuid.clone())
        .collect();
    let (score, not_scored) =
        match luna16::score(&nodules, &excluded, &marks(predictions), &scans, None) {
            Ok(score) => (Some(score), None),
            Err(e @ (ScoreError::NoNodules { .. } | ScoreError::NoScans)) => {
                (None, Some(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
    Ok(DetectionReport {
        nodules_from,
        score,
        not_scored,
        scans_without_predictions,
    })
}
