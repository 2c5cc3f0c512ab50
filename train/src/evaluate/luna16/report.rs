//! Scoring a submission end to end, the [`Score`] that `score.json` holds,
//! and the `CADAnalysis.txt` summary in the official layout.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::csv_input::{Finding, Mark};
use super::froc::{self, Bootstrap, FrocCurve, Interval, FP_RATES};
use super::matching::match_marks;

/// Why a submission cannot be scored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScoreError {
    /// No scan to score (and nothing to divide false positives by).
    #[error("the scan list is empty")]
    NoScans,
    /// Not one annotated nodule in the listed scans: sensitivity is undefined.
    #[error("no annotated nodule in the {scans} listed scans")]
    NoNodules { scans: usize },
    /// A mark's probability is NaN or infinite (the readers never produce
    /// one; hand-built marks might).
    #[error("mark {index} (scan {seriesuid}): probability {value} is not a finite number")]
    InvalidProbability {
        index: usize,
        seriesuid: String,
        value: f64,
    },
    /// A bootstrap of zero resamples was asked for.
    #[error("bootstrap needs at least one resample")]
    NoResamples,
}

/// A submission's score: the CPM, its seven sensitivities, the matching
/// counts, the FROC curve, and (when asked for) bootstrap intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Mean sensitivity over [`FP_RATES`].
    pub cpm: f64,
    /// Sensitivity at each of [`FP_RATES`]; in JSON, a map from the rate
    /// (`"0.125"` … `"8"`) to the value.
    #[serde(with = "rate_map")]
    pub sensitivities: [f64; 7],
    /// Annotated nodules in the listed scans.
    pub nodules: usize,
    /// Nodules hit by at least one mark.
    pub detected: usize,
    /// Nodules no mark hit.
    pub missed: usize,
    /// Marks that hit nothing relevant.
    pub false_positives: usize,
    /// Marks ignored because they hit an excluded finding.
    pub ignored_excluded: usize,
    /// Extra hits on an already detected nodule.
    pub ignored_double_hits: usize,
    /// Hits by a mark that had already detected another nodule.
    pub shared_hits: usize,
    /// Marks of listed scans kept after the 100-per-scan cap.
    pub marks: usize,
    /// Marks dropped by the 100-per-scan cap.
    pub marks_over_cap: usize,
    /// Submission rows for scans outside the scan list, ignored.
    pub unknown_scan_marks: usize,
    /// Scans in the list, the false-positive rate's divisor.
    pub scans: usize,
    /// Listed scans with annotated nodules and not one mark.
    pub scans_without_marks: Vec<String>,
    /// The FROC curve, for plotting.
    pub froc: FrocCurve,
    /// Present when a bootstrap was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSummary>,
}

/// The bootstrap part of a [`Score`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapSummary {
    /// Resamples drawn.
    pub n: usize,
    /// Seed of the resampling stream.
    pub seed: u64,
    /// Mean and 95 % bounds at each of [`FP_RATES`]; in JSON, a map keyed by rate.
    #[serde(with = "rate_map")]
    pub sensitivities: [Interval; 7],
    /// Rates of the plotted band (10 000 points from 1/8 to 8); left out of
    /// JSON to keep `score.json` small.
    #[serde(skip)]
    pub band_fps: Vec<f64>,
    /// Mean and bounds at each of `band_fps`; left out of JSON.
    #[serde(skip)]
    pub band: Vec<Interval>,
}

/// Scores `marks` against the `annotations`, ignoring marks on `excluded`
/// findings, over the scans in `scans`, which also sets the false-positive
/// divisor: a listed scan without marks still counts. Optionally bootstraps
/// over scans (costs `bootstrap.n` curve builds and `n` × 40 kB for the band).
pub fn score(
    annotations: &[Finding],
    excluded: &[Finding],
    marks: &[Mark],
    scans: &[String],
    bootstrap: Option<Bootstrap>,
) -> Result<Score, ScoreError> {
    if scans.is_empty() {
        return Err(ScoreError::NoScans);
    }
    if let Some((index, mark)) = marks
        .iter()
        .enumerate()
        .find(|(_, m)| !m.probability.is_finite())
    {
        return Err(ScoreError::InvalidProbability {
            index,
            seriesuid: mark.seriesuid.clone(),
            value: mark.probability,
        });
    }
    if bootstrap.is_some_and(|b| b.n == 0) {
        return Err(ScoreError::NoResamples);
    }
    let matching = match_marks(annotations, excluded, marks, scans);
    let counts = &matching.counts;
    if counts.nodules == 0 {
        return Err(ScoreError::NoNodules { scans: scans.len() });
    }
    let curve = froc::froc_curve(&matching.entries, scans.len());
    let sensitivities = froc::sensitivities(&curve);
    let bootstrap = bootstrap.map(|config| {
        let b = froc::bootstrap(&matching.entries, scans, config);
        BootstrapSummary {
            n: config.n,
            seed: config.seed,
            sensitivities: b.at_rates,
            band_fps: b.band_fps,
            band: b.band,
        }
    });
    Ok(Score {
        cpm: froc::cpm(&sensitivities),
        sensitivities,
        nodules: counts.nodules,
        detected: counts.detected,
        missed: counts.missed,
        false_positives: counts.false_positives,
        ignored_excluded: counts.ignored_excluded,
        ignored_double_hits: counts.ignored_double_hits,
        shared_hits: counts.shared_hits,
        marks: counts.marks,
        marks_over_cap: counts.marks_over_cap,
        unknown_scan_marks: counts.unknown_scan_marks,
        scans: scans.len(),
        scans_without_marks: matching.scans_without_marks,
        froc: curve,
        bootstrap,
    })
}

/// The scan list used when none is given: every scan of the annotations, then
/// every other scan of the submission, each once, in first-seen order.
pub fn default_scan_list(annotations: &[Finding], marks: &[Mark]) -> Vec<String> {
    let mut seen = HashSet::new();
    annotations
        .iter()
        .map(|f| &f.seriesuid)
        .chain(marks.iter().map(|m| &m.seriesuid))
        .filter(|uid| seen.insert(uid.as_str()))
        .cloned()
        .collect()
}

/// `CADAnalysis.txt` as the official evaluation writes it, line for line;
/// `system_name` is what it prints after "CAD Analysis:" (the official script
/// uses the submission's file name without extension). True negatives are
/// always 0: nothing in a candidate list is a true negative.
pub fn cad_analysis(score: &Score, system_name: &str) -> String {
    let rule = "*".repeat(60);
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "\n{rule}\nCAD Analysis: {system_name}\n{rule}\n\n\
         Candidate detection results:\n\
         \x20   True positives: {}\n\
         \x20   False positives: {}\n\
         \x20   False negatives: {}\n\
         \x20   True negatives: 0\n\
         \x20   Total number of candidates: {}\n\
         \x20   Total number of nodules: {}\n\
         \x20   Ignored candidates on excluded nodules: {}\n\
         \x20   Ignored candidates which were double detections on a nodule: {}\n",
        score.detected,
        score.false_positives,
        score.missed,
        score.marks,
        score.nodules,
        score.ignored_excluded,
        score.ignored_double_hits,
    );
    if score.nodules == 0 {
        s.push_str("    Sensitivity: 0.0\n");
    } else {
        let _ = writeln!(
            s,
            "    Sensitivity: {:.9}",
            score.detected as f64 / score.nodules as f64
        );
    }
    let _ = writeln!(
        s,
        "    Average number of candidates per scan: {:.9}",
        score.marks as f64 / score.scans as f64
    );
    s
}

/// Serialises a per-rate array as a JSON map keyed by the rate (`"0.125"`,
/// `"0.25"`, `"0.5"`, `"1"`, `"2"`, `"4"`, `"8"`), and reads it back.
mod rate_map {
    use super::*;
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        values: &[T; 7],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(FP_RATES.iter().map(|r| r.to_string()).zip(values))
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<[T; 7], D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let mut map = BTreeMap::<String, T>::deserialize(d)?;
        let values: Vec<T> = FP_RATES
            .iter()
            .map(|r| {
                map.remove(&r.to_string())
                    .ok_or_else(|| D::Error::custom(format!("missing rate {r}")))
            })
            .collect::<Result<_, _>>()?;
        values
            .try_into()
            .map_err(|_| D::Error::custom("expected seven rates"))
    }
}
