//! One scan through the whole of chapter 14: the U-Net over every slice,
//! the mask's components as candidates, each classified as a nodule or not
//! and, above the nodule threshold, as malignant or not.

use std::time::Instant;

use ndarray::Array3;
use shared::volume::Volume;
use tch::Device;

use super::classify::{classify, ClassifyError, ClassifyOptions};
use super::components::{candidates_and_eroded_mask, Candidate, CentreRule, ComponentsError};
use super::segment::{segment_scan, SegmentError, SegmentOptions};
use crate::model::{LunaModel, UNet};

/// The models of an analysis, loaded on `device`.
pub struct Models<'a> {
    pub seg: &'a UNet,
    pub cls: &'a LunaModel,
    pub mal: Option<&'a LunaModel>,
    pub device: Device,
}

/// How to run them.
#[derive(Clone, Copy, Debug)]
pub struct AnalyzeOptions {
    pub segment: SegmentOptions,
    pub classify: ClassifyOptions,
    /// P(nodule) from which a candidate is a nodule (and gets a
    /// malignancy): the book's 0.5.
    pub threshold: f32,
    /// Where each component's candidates are.
    pub centres: CentreRule,
}

/// A candidate and what the classifiers made of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassifiedCandidate {
    pub candidate: Candidate,
    pub p_nodule: f32,
    /// Only with a malignancy model, and only at or above the threshold.
    pub p_malignant: Option<f32>,
}

/// Seconds spent per stage.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageSeconds {
    /// Reading and decoding the scan (the caller's).
    pub read: f64,
    pub segment: f64,
    pub components: f64,
    pub classify: f64,
}

/// A scan's analysis.
pub struct ScanAnalysis {
    /// In label order (the segmentation's).
    pub candidates: Vec<ClassifiedCandidate>,
    /// The eroded mask the candidates came from, `[i][r][c]`.
    pub mask: Array3<bool>,
    pub seconds: StageSeconds,
}

impl ScanAnalysis {
    /// The candidates at or above the threshold, likeliest first.
    pub fn nodules(&self, threshold: f32) -> Vec<&ClassifiedCandidate> {
        let mut nodules: Vec<&ClassifiedCandidate> = self
            .candidates
            .iter()
            .filter(|c| c.p_nodule >= threshold)
            .collect();
        nodules.sort_by(|a, b| b.p_nodule.total_cmp(&a.p_nodule));
        nodules
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("segmentation: {0}")]
    Segment(#[from] SegmentError),
    #[error("grouping the mask: {0}")]
    Components(#[from] ComponentsError),
    #[error("nodule classifier: {0}")]
    Nodule(ClassifyError),
    #[error("malignancy classifier: {0}")]
    Malignancy(ClassifyError),
}

/// Runs the three stages over `volume`.
pub fn analyze_volume(
    models: &Models<'_>,
    volume: &Volume,
    options: AnalyzeOptions,
) -> Result<ScanAnalysis, AnalyzeError> {
    let mut seconds = StageSeconds::default();
    let clock = Instant::now();
    let mask = segment_scan(models.seg, volume, options.segment)?;
    seconds.segment = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let (found, mask) = candidates_and_eroded_mask(volume, &mask, options.centres)?;
    seconds.components = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let centres: Vec<[f64; 3]> = found.iter().map(|c| c.center_xyz).collect();
    let run = |model| classify(model, models.device, volume, &centres, options.classify);
    let p_nodule = run(models.cls).map_err(AnalyzeError::Nodule)?;
    let p_malignant = match models.mal {
        None => vec![None; found.len()],
        Some(mal) => malignancy(mal, models.device, volume, &centres, &p_nodule, options)?,
    };
    seconds.classify = clock.elapsed().as_secs_f64();

    let candidates = found
        .into_iter()
        .zip(p_nodule)
        .zip(p_malignant)
        .map(|((candidate, p_nodule), p_malignant)| ClassifiedCandidate {
            candidate,
            p_nodule,
            p_malignant,
        })
        .collect();
    Ok(ScanAnalysis {
        candidates,
        mask,
        seconds,
    })
}

/// P(malignant) of the candidates at or above the threshold; `None` for
/// the others, which the malignancy model never sees.
fn malignancy(
    model: &LunaModel,
    device: Device,
    volume: &Volume,
    centres: &[[f64; 3]],
    p_nodule: &[f32],
    options: AnalyzeOptions,
) -> Result<Vec<Option<f32>>, AnalyzeError> {
    let nodules: Vec<usize> = (0..centres.len())
        .filter(|&k| p_nodule[k] >= options.threshold)
        .collect();
    let picked: Vec<[f64; 3]> = nodules.iter().map(|&k| centres[k]).collect();
    let p = classify(model, device, volume, &picked, options.classify)
        .map_err(AnalyzeError::Malignancy)?;
    let mut out = vec![None; centres.len()];
    for (k, p) in nodules.into_iter().zip(p) {
        out[k] = Some(p);
    }
    Ok(out)
}
