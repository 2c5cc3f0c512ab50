//! LUNA16's detection score: the FROC curve and the CPM, computed the way the
//! challenge's `noduleCADEvaluationLUNA16.py` scores a candidate list.
//!
//! Matching, per scan: a candidate detects a nodule when the squared distance
//! between their centres is strictly below the squared radius (the official
//! `dist < radiusSquared`). Every candidate that detects some nodule leaves
//! the false-positive pool, and a nodule enters the curve once, with the
//! highest probability among its hits; extra hits on one nodule are ignored,
//! not counted as false positives. Undetected nodules count in the
//! sensitivity's denominator only. The official script also drops candidates
//! on "irrelevant findings" (`annotations_excluded.csv`); the cache records
//! none, so nothing is excluded here.
//!
//! Differences, both about data the official script never sees: a nodule
//! diameter `<= 0` means the book's merge found no annotation, and takes the
//! 10 mm the official script gives findings without a diameter (`-1`).
//!
//! The curve has a point per distinct probability (what scikit-learn's
//! `roc_curve` yields, scaled to FP per scan and nodule sensitivity), and the
//! sensitivities at 1/8…8 FP per scan are read off it with `np.interp`'s
//! rule: linear between points, the last of equal x values, clamped ends.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Prediction;

/// The FP-per-scan rates the CPM averages over.
pub const FP_RATES: [f64; 7] = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

/// What the official script does with a finding of unknown size.
const UNKNOWN_DIAMETER_MM: f64 = 10.0;

/// A reference nodule: where it is and how large.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nodule {
    pub series_uid: String,
    pub center_xyz: [f64; 3],
    pub diameter_mm: f64,
}

impl Nodule {
    fn radius_squared(&self) -> f64 {
        let d = if self.diameter_mm > 0.0 {
            self.diameter_mm
        } else {
            UNKNOWN_DIAMETER_MM
        };
        (d / 2.0) * (d / 2.0)
    }
}

/// The reference nodules of a cached candidate list: the distinct
/// (series, centre, diameter) of its positive candidates, in first-seen order.
pub fn nodules_from_positives(predictions: &[Prediction]) -> Vec<Nodule> {
    let mut seen = std::collections::HashSet::new();
    let mut nodules = Vec::new();
    for p in predictions.iter().filter(|p| p.is_nodule) {
        let key = (
            p.series_uid.as_str(),
            p.center_xyz.map(f64::to_bits),
            p.diameter_mm.to_bits(),
        );
        if seen.insert(key) {
            nodules.push(Nodule {
                series_uid: p.series_uid.clone(),
                center_xyz: p.center_xyz,
                diameter_mm: p.diameter_mm,
            });
        }
    }
    nodules
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrocPoint {
    /// Candidates scoring `>= threshold` are called; `None` at the origin
    /// (nothing called), where scikit-learn puts an infinite threshold.
    pub threshold: Option<f64>,
    pub fps_per_scan: f64,
    pub sensitivity: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub fps_per_scan: f64,
    pub sensitivity: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Froc {
    pub scans: usize,
    pub nodules: usize,
    /// Nodules hit by at least one candidate, at any probability.
    pub detected_nodules: usize,
    /// Candidates that hit no nodule.
    pub false_positives: usize,
    /// Hits beyond the best one on a nodule, ignored like the official script does.
    pub duplicate_hits: usize,
    pub curve: Vec<FrocPoint>,
    /// Sensitivity at each of [`FP_RATES`].
    pub operating_points: Vec<OperatingPoint>,
    /// Mean of the seven sensitivities; `None` without nodules.
    pub cpm: Option<f64>,
}

fn distance_squared(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Scores `predictions` against `nodules` over `scans` scans (the official
/// divisor is the number of scans evaluated, with or without candidates).
pub fn froc(predictions: &[Prediction], nodules: &[Nodule], scans: usize) -> Froc {
    let mut by_series: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in predictions.iter().enumerate() {
        by_series.entry(p.series_uid.as_str()).or_default().push(i);
    }
    let mut hits_a_nodule = vec![false; predictions.len()];
    let mut nodule_scores = Vec::new();
    let mut duplicate_hits = 0;
    for nodule in nodules {
        let radius_squared = nodule.radius_squared();
        let candidates = by_series
            .get(nodule.series_uid.as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut best: Option<f32> = None;
        let mut hits = 0usize;
        for &i in candidates {
            if distance_squared(&predictions[i].center_xyz, &nodule.center_xyz) < radius_squared {
                hits_a_nodule[i] = true;
                hits += 1;
                let p = predictions[i].prob_nodule;
                best = Some(best.map_or(p, |b| b.max(p)));
            }
        }
        duplicate_hits += hits.saturating_sub(1);
        nodule_scores.extend(best);
    }
    let fp_scores: Vec<f32> = predictions
        .iter()
        .zip(&hits_a_nodule)
        .filter(|(_, &hit)| !hit)
        .map(|(p, _)| p.prob_nodule)
        .collect();
    let curve = froc_curve(&nodule_scores, &fp_scores, nodules.len(), scans);
    let operating_points: Vec<OperatingPoint> = FP_RATES
        .iter()
        .map(|&rate| OperatingPoint {
            fps_per_scan: rate,
            sensitivity: interp(rate, &curve),
        })
        .collect();
    let cpm = (!nodules.is_empty()).then(|| {
        operating_points.iter().map(|o| o.sensitivity).sum::<f64>() / FP_RATES.len() as f64
    });
    Froc {
        scans,
        nodules: nodules.len(),
        detected_nodules: nodule_scores.len(),
        false_positives: fp_scores.len(),
        duplicate_hits,
        curve,
        operating_points,
        cpm,
    }
}

/// One point per distinct score, descending, after the origin.
fn froc_curve(
    nodule_scores: &[f32],
    fp_scores: &[f32],
    nodules: usize,
    scans: usize,
) -> Vec<FrocPoint> {
    let mut scored: Vec<(f32, bool)> = nodule_scores
        .iter()
        .map(|&s| (s, true))
        .chain(fp_scores.iter().map(|&s| (s, false)))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let per_scan = |fp: usize| {
        if scans == 0 {
            0.0
        } else {
            fp as f64 / scans as f64
        }
    };
    let sensitivity = |tp: usize| {
        if nodules == 0 {
            0.0
        } else {
            tp as f64 / nodules as f64
        }
    };
    let mut curve = vec![FrocPoint {
        threshold: None,
        fps_per_scan: 0.0,
        sensitivity: 0.0,
    }];
    let (mut tp, mut fp) = (0, 0);
    for (k, &(score, is_nodule)) in scored.iter().enumerate() {
        if is_nodule {
            tp += 1;
        } else {
            fp += 1;
        }
        if scored.get(k + 1).is_none_or(|next| next.0 != score) {
            curve.push(FrocPoint {
                threshold: Some(f64::from(score)),
                fps_per_scan: per_scan(fp),
                sensitivity: sensitivity(tp),
            });
        }
    }
    curve
}

/// `np.interp(x, fps, sens)` on a curve whose FP rates never decrease.
fn interp(x: f64, curve: &[FrocPoint]) -> f64 {
    let Some(first) = curve.first() else {
        return 0.0;
    };
    if x < first.fps_per_scan {
        return first.sensitivity;
    }
    // The last point at or left of x: with equal rates, the highest sensitivity.
    let j = curve.partition_point(|p| p.fps_per_scan <= x) - 1;
    let (a, Some(b)) = (curve[j], curve.get(j + 1)) else {
        return curve[j].sensitivity;
    };
    if a.fps_per_scan == x {
        return a.sensitivity;
    }
    let t = (x - a.fps_per_scan) / (b.fps_per_scan - a.fps_per_scan);
    a.sensitivity + t * (b.sensitivity - a.sensitivity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(series: &str, xyz: [f64; 3], prob: f32, is_nodule: bool, diameter: f64) -> Prediction {
        Prediction {
            prob_nodule: prob,
            is_nodule,
            series_uid: series.to_owned(),
            center_xyz: xyz,
            diameter_mm: diameter,
        }
    }

    fn nodule(series: &str, xyz: [f64; 3], diameter: f64) -> Nodule {
        Nodule {
            series_uid: series.to_owned(),
            center_xyz: xyz,
            diameter_mm: diameter,
        }
    }

    fn sensitivities(f: &Froc) -> Vec<f64> {
        f.operating_points.iter().map(|o| o.sensitivity).collect()
    }

    #[test]
    fn perfect_classifier_has_cpm_one() {
        let preds = vec![
            pred("a", [0.0; 3], 0.9, true, 6.0),
            pred("a", [50.0, 0.0, 0.0], 0.1, false, 0.0),
            pred("b", [10.0, 10.0, 10.0], 0.8, true, 4.0),
            pred("b", [-50.0, 0.0, 0.0], 0.2, false, 0.0),
        ];
        let nodules = nodules_from_positives(&preds);
        assert_eq!(nodules.len(), 2);
        let f = froc(&preds, &nodules, 2);
        assert_eq!(f.cpm, Some(1.0));
        assert_eq!(f.false_positives, 2);
        assert_eq!(f.detected_nodules, 2);
    }

    #[test]
    fn reversed_classifier_reaches_full_sensitivity_only_after_all_fps() {
        // 8 FPs on one scan above the only nodule: it is found at 8 FP/scan.
        let mut preds: Vec<Prediction> = (0..8)
            .map(|k| pred("a", [100.0 + k as f64 * 20.0, 0.0, 0.0], 0.9, false, 0.0))
            .collect();
        preds.push(pred("a", [0.0; 3], 0.1, true, 5.0));
        let f = froc(&preds, &nodules_from_positives(&preds), 1);
        // Curve: (0,0) → (8, 0) at 0.9 → (8, 1) at 0.1; np.interp at x = 8 takes the last point.
        assert_eq!(sensitivities(&f), vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(f.cpm, Some(1.0 / 7.0));
    }

    #[test]
    fn fp_rate_divides_by_the_number_of_scans() {
        // Two FPs above the nodule. One scan: 2 FP/scan before the hit; two scans: 1 FP/scan.
        let preds = vec![
            pred("a", [100.0, 0.0, 0.0], 0.9, false, 0.0),
            pred("b", [100.0, 0.0, 0.0], 0.8, false, 0.0),
            pred("a", [0.0; 3], 0.5, true, 5.0),
        ];
        let nodules = nodules_from_positives(&preds);
        let one = froc(&preds, &nodules, 1);
        assert_eq!(one.curve.last().unwrap().fps_per_scan, 2.0);
        let two = froc(&preds, &nodules, 2);
        let points: Vec<(f64, f64)> = two
            .curve
            .iter()
            .map(|p| (p.fps_per_scan, p.sensitivity))
            .collect();
        assert_eq!(points, vec![(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (1.0, 1.0)]);
        // At 1 FP/scan np.interp takes the last point with x = 1: found.
        assert_eq!(sensitivities(&two), vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(sensitivities(&one), vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn a_nodule_hit_twice_counts_once_with_its_best_score() {
        let preds = vec![
            pred("a", [0.0; 3], 0.3, true, 10.0),
            pred("a", [1.0, 1.0, 1.0], 0.9, false, 0.0),
            pred("a", [30.0, 0.0, 0.0], 0.5, false, 0.0),
        ];
        let nodules = nodules_from_positives(&preds);
        let f = froc(&preds, &nodules, 1);
        assert_eq!(f.detected_nodules, 1);
        assert_eq!(f.duplicate_hits, 1);
        // The near miss at distance √3 < 5 is a hit, not an FP; only the far one is an FP.
        assert_eq!(f.false_positives, 1);
        // The nodule enters at 0.9, before the FP: sensitivity 1 from 0 FP/scan on.
        assert_eq!(f.curve[1].threshold, Some(f64::from(0.9f32)));
        assert_eq!(f.curve[1].sensitivity, 1.0);
        assert_eq!(f.cpm, Some(1.0));
    }

    #[test]
    fn a_candidate_on_or_outside_the_radius_is_a_false_positive() {
        let n = [nodule("a", [0.0; 3], 10.0)];
        // Exactly at the radius: the official test is strict.
        let preds = vec![
            pred("a", [5.0, 0.0, 0.0], 0.9, false, 0.0),
            pred("a", [0.0, 4.99, 0.0], 0.2, false, 0.0),
            // Same place, other scan: never a hit.
            pred("b", [0.0; 3], 0.95, false, 0.0),
        ];
        let f = froc(&preds, &n, 2);
        assert_eq!(f.false_positives, 2);
        assert_eq!(f.detected_nodules, 1);
    }

    #[test]
    fn unknown_diameter_uses_ten_millimetres_and_undetected_nodules_count() {
        let n = [
            nodule("a", [0.0; 3], 0.0),
            nodule("a", [200.0, 0.0, 0.0], 4.0),
        ];
        let preds = vec![pred("a", [4.0, 0.0, 0.0], 0.7, true, 0.0)];
        let f = froc(&preds, &n, 1);
        assert_eq!(f.detected_nodules, 1);
        assert_eq!(f.nodules, 2);
        assert_eq!(f.cpm, Some(0.5));
    }

    #[test]
    fn interpolates_linearly_between_curve_points_at_the_seven_rates() {
        // 16 FPs on 4 scans at descending scores, nodules between them.
        let mut preds = Vec::new();
        for k in 0..16 {
            let score = 0.95 - 0.05 * k as f32;
            preds.push(pred(
                "a",
                [1000.0 + 20.0 * k as f64, 0.0, 0.0],
                score,
                false,
                0.0,
            ));
        }
        for s in ["b", "c", "d"] {
            preds.push(pred(s, [0.0; 3], 0.01, false, 0.0));
        }
        // Nodule 1 above every FP, nodule 2 after 4 FPs (1 FP/scan), nodule 3 below them all.
        preds.push(pred("a", [0.0; 3], 0.99, true, 5.0));
        preds.push(pred("a", [100.0, 0.0, 0.0], 0.775, true, 5.0));
        preds.push(pred("a", [200.0, 0.0, 0.0], 0.001, true, 5.0));
        let f = froc(&preds, &nodules_from_positives(&preds), 4);
        let s = sensitivities(&f);
        let (third, two_thirds) = (1.0 / 3.0, 2.0 / 3.0);
        // Up to 1 FP/scan one nodule is found. FP #4 (score 0.80) gives (1.0, 1/3), then the
        // nodule at 0.775 gives (1.0, 2/3); np.interp takes the last of equal x: 2/3.
        assert_eq!(&s[..4], &[third, third, third, two_thirds]);
        // 16 FP + 3 FP at 0.01 = 19 FP / 4 scans = 4.75 before the last nodule at 0.001.
        assert_eq!(s[4], two_thirds);
        assert_eq!(s[5], two_thirds);
        // 8 FP/scan is beyond the curve's end (4.75, 1.0): clamped.
        assert_eq!(s[6], 1.0);
        // Between two points with different sensitivities the value is interpolated.
        let curve = [
            FrocPoint {
                threshold: None,
                fps_per_scan: 0.0,
                sensitivity: 0.0,
            },
            FrocPoint {
                threshold: Some(0.5),
                fps_per_scan: 0.1,
                sensitivity: 0.2,
            },
            FrocPoint {
                threshold: Some(0.4),
                fps_per_scan: 0.3,
                sensitivity: 0.6,
            },
        ];
        assert!((interp(0.125, &curve) - 0.25).abs() < 1e-12);
        assert!((interp(0.25, &curve) - 0.5).abs() < 1e-12);
    }
}
