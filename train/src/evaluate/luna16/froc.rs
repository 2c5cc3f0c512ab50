//! The FROC curve, the sensitivities at fixed false-positive rates, the CPM,
//! and the bootstrap confidence band.
//!
//! The curve is a ROC curve over the ranked entries (detected nodules and
//! false positives; missed nodules have no mark to rank), rescaled: the false
//! positive rate becomes false positives per scan, the true positive rate
//! becomes the fraction of *all* nodules found, so misses cap the curve below 1.
//! The ROC step reproduces scikit-learn's `roc_curve` (one point per distinct
//! probability, collinear points dropped, a leading `(0, 0)` point), and
//! reading the curve at a rate reproduces `np.interp`, because the CPM is defined
//! by those two routines and only they give bit-for-bit the same numbers.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::matching::FrocEntry;

/// The false-positive-per-scan rates whose sensitivities the CPM averages.
pub const FP_RATES: [f64; 7] = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

/// The range the bootstrap band covers, in false positives per scan.
pub const BAND_RANGE: (f64, f64) = (0.125, 8.0);

/// How many points the bootstrap band has, evenly spaced over [`BAND_RANGE`].
pub const BAND_POINTS: usize = 10_000;

/// The bootstrap's confidence level.
pub const CONFIDENCE: f64 = 0.95;

/// A ROC curve: one point per threshold, thresholds decreasing, rates
/// non-decreasing. The first point is `(0, 0)` at threshold `+inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct Roc {
    /// False positive rate (fraction of negatives at or above the threshold).
    pub fpr: Vec<f64>,
    /// True positive rate (fraction of positives at or above the threshold).
    pub tpr: Vec<f64>,
    /// The score each point thresholds at.
    pub thresholds: Vec<f64>,
}

/// ROC curve of `scores` against `labels` (true = positive), computed as
/// scikit-learn's `roc_curve` with its defaults (`drop_intermediate=True`).
///
/// Tied scores form one threshold. Interior points collinear with their
/// neighbours are dropped (they change neither the plot nor the area). A
/// rate whose class is absent is NaN throughout, as in scikit-learn. Given no
/// samples it returns the lone `(0, 0)` point with NaN rates, where
/// scikit-learn raises.
pub fn roc_curve(labels: &[bool], scores: &[f64]) -> Roc {
    assert_eq!(labels.len(), scores.len(), "one label per score");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable, descending; NaN-free inputs are the caller's contract.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    // Cumulative counts at the last sample of every run of equal scores.
    let mut tps = Vec::new();
    let mut fps = Vec::new();
    let mut thresholds = Vec::new();
    let mut positives = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] {
            positives += 1.0;
        }
        // `!=` rather than `total_cmp`: -0.0 and 0.0 are one threshold.
        let last_of_run = order
            .get(rank + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_run {
            tps.push(positives);
            fps.push(1.0 + rank as f64 - positives);
            thresholds.push(scores[i]);
        }
    }

    if fps.len() > 2 {
        let keep: Vec<usize> = (0..fps.len())
            .filter(|&k| {
                k == 0
                    || k == fps.len() - 1
                    || second_difference(&fps, k) != 0.0
                    || second_difference(&tps, k) != 0.0
            })
            .collect();
        fps = keep.iter().map(|&k| fps[k]).collect();
        tps = keep.iter().map(|&k| tps[k]).collect();
        thresholds = keep.iter().map(|&k| thresholds[k]).collect();
    }

    fps.insert(0, 0.0);
    tps.insert(0, 0.0);
    thresholds.insert(0, f64::INFINITY);
    Roc {
        fpr: normalise(&fps),
        tpr: normalise(&tps),
        thresholds,
    }
}

/// `np.diff(v, 2)` at interior point `k`, computed the same way.
fn second_difference(v: &[f64], k: usize) -> f64 {
    (v[k + 1] - v[k]) - (v[k] - v[k - 1])
}

/// Divides by the last value; NaN throughout when that is not positive.
fn normalise(counts: &[f64]) -> Vec<f64> {
    let total = counts[counts.len() - 1];
    if total > 0.0 {
        counts.iter().map(|c| c / total).collect()
    } else {
        vec![f64::NAN; counts.len()]
    }
}

/// A FROC curve: sensitivity against average false positives per scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrocCurve {
    /// Average false positives per scan, non-decreasing.
    pub fps_per_scan: Vec<f64>,
    /// Fraction of all nodules detected at that point.
    pub sensitivity: Vec<f64>,
    /// The probability threshold of each point; the first is `+inf`, written
    /// to JSON as `null`.
    #[serde(with = "infinite_as_null")]
    pub thresholds: Vec<f64>,
}

/// FROC curve of matching's `entries` over `n_scans` scans.
///
/// Two departures from the official arithmetic, both where it yields NaN or
/// crashes rather than a number: with no detected nodule the sensitivity is 0
/// throughout (scikit-learn's rate would be NaN), and with no ranked entry at
/// all the curve is the single point `(0, 0)`.
pub fn froc_curve(entries: &[FrocEntry], n_scans: usize) -> FrocCurve {
    let ranked: Vec<&FrocEntry> = entries.iter().filter(|e| !e.excluded).collect();
    let labels: Vec<bool> = ranked.iter().map(|e| e.is_nodule).collect();
    let scores: Vec<f64> = ranked.iter().map(|e| e.probability).collect();
    let detected = labels.iter().filter(|&&l| l).count() as f64;
    let nodules = entries.iter().filter(|e| e.is_nodule).count() as f64;
    let false_positives = ranked.len() as f64 - detected;

    let roc = roc_curve(&labels, &scores);
    // Without a single false positive the ROC's x axis is undefined; the
    // curve then sits on x = 0. The test is "every entry is a nodule", which
    // is the same thing since false positives are never excluded.
    let fps_per_scan = if entries.iter().all(|e| e.is_nodule) {
        vec![0.0; roc.fpr.len()]
    } else {
        roc.fpr
            .iter()
            .map(|r| r * false_positives / n_scans as f64)
            .collect()
    };
    let sensitivity = if detected > 0.0 {
        roc.tpr.iter().map(|r| r * detected / nodules).collect()
    } else {
        vec![0.0; roc.tpr.len()]
    };
    FrocCurve {
        fps_per_scan,
        sensitivity,
        thresholds: roc.thresholds,
    }
}

/// Linear interpolation of the curve `(xp, fp)` at `x`, exactly as `np.interp`:
/// constant beyond either end, and at an x repeated in `xp` the value of its
/// last occurrence. `xp` must be non-decreasing and as long as `fp`.
pub fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    assert!(!xp.is_empty() && xp.len() == fp.len(), "one y per x");
    let last = xp.len() - 1;
    if x > xp[last] {
        return fp[last];
    }
    if x < xp[0] {
        return fp[0];
    }
    // The last j with xp[j] <= x.
    let j = xp.partition_point(|&v| v <= x) - 1;
    if j == last || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let y = slope * (x - xp[j]) + fp[j];
    if !y.is_nan() {
        return y;
    }
    // numpy's fallbacks for infinite values, kept for completeness.
    let y = slope * (x - xp[j + 1]) + fp[j + 1];
    if y.is_nan() && fp[j] == fp[j + 1] {
        fp[j]
    } else {
        y
    }
}

/// The curve's sensitivity at each of [`FP_RATES`].
pub fn sensitivities(curve: &FrocCurve) -> [f64; 7] {
    FP_RATES.map(|rate| interp(rate, &curve.fps_per_scan, &curve.sensitivity))
}

/// The Competition Performance Metric: the mean of the seven sensitivities,
/// summed in order (as `np.mean` sums so few values, to the last bit).
pub fn cpm(sensitivities: &[f64; 7]) -> f64 {
    sensitivities.iter().sum::<f64>() / sensitivities.len() as f64
}

/// `np.linspace(start, stop, n)`: `start + i * step`, the last point exactly `stop`.
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
            v[n - 1] = stop;
            v
        }
    }
}

/// Most resamples a bootstrap takes: each keeps its band (40 kB) until the
/// order statistics are taken, so this bounds memory at ~0.4 GB; ten times
/// the official evaluation's 1000.
pub const MAX_BOOTSTRAP: usize = 10_000;

/// How to bootstrap: `n` resamples, drawn from a ChaCha8 stream seeded by `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Number of resamples (the official evaluation uses 1000).
    pub n: usize,
    /// Seed of the ChaCha8 stream the resamples are drawn from.
    pub seed: u64,
}

/// Mean and confidence bounds of one statistic over the bootstrap resamples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Mean over resamples.
    pub mean: f64,
    /// Lower bound: the 2.5 % order statistic.
    pub lower: f64,
    /// Upper bound: the 97.5 % order statistic.
    pub upper: f64,
}

/// The bootstrap's outcome: intervals at [`FP_RATES`] and, for plotting, the
/// band over [`BAND_POINTS`] rates spanning [`BAND_RANGE`].
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapFroc {
    /// Intervals at each of [`FP_RATES`].
    pub at_rates: [Interval; 7],
    /// The band's false-positive rates.
    pub band_fps: Vec<f64>,
    /// Intervals at each of `band_fps`.
    pub band: Vec<Interval>,
}

/// Bootstraps the FROC over scans: each resample draws `scans.len()` scans
/// with replacement, keeps every entry of every drawn scan (a scan drawn twice
/// contributes twice), and builds its curve with the full scan count as the
/// divisor. At each rate the mean is taken over resamples and the bounds are
/// the sorted values at `floor(p * n)` and `floor((1 - p) * n)`, with
/// `p = (1 - 0.95) / 2` computed in floating point as the official evaluation
/// does (for n = 1000: the 26th and 976th smallest).
///
/// Entries are grouped by series UID, so a UID listed twice pools both
/// copies' entries. The draws come from `ChaCha8Rng::seed_from_u64(seed)`, so
/// a seed always gives the same result but never numpy's.
///
/// # Panics
/// If `config.n` is 0 or `scans` is empty.
pub fn bootstrap(entries: &[FrocEntry], scans: &[String], config: Bootstrap) -> BootstrapFroc {
    assert!(config.n > 0 && !scans.is_empty(), "nothing to resample");
    let mut by_uid: HashMap<&str, Vec<FrocEntry>> = HashMap::new();
    for entry in entries {
        by_uid
            .entry(scans[entry.scan].as_str())
            .or_default()
            .push(*entry);
    }
    let band_fps = linspace(BAND_RANGE.0, BAND_RANGE.1, BAND_POINTS);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut at_rates: Vec<[f64; 7]> = Vec::with_capacity(config.n);
    // Resample-major, f32 like the official band: 1000 resamples take 40 MB.
    let mut band_values: Vec<f32> = Vec::with_capacity(config.n * BAND_POINTS);
    let mut sample = Vec::new();
    for _ in 0..config.n {
        sample.clear();
        for _ in 0..scans.len() {
            let uid = scans[rng.random_range(0..scans.len())].as_str();
            if let Some(group) = by_uid.get(uid) {
                sample.extend_from_slice(group);
            }
        }
        let curve = froc_curve(&sample, scans.len());
        at_rates.push(sensitivities(&curve));
        band_values.extend(
            band_fps
                .iter()
                .map(|&x| interp(x, &curve.fps_per_scan, &curve.sensitivity) as f32),
        );
    }

    let rate_intervals: Vec<Interval> = (0..FP_RATES.len())
        .map(|k| interval(at_rates.iter().map(|s| s[k]).collect()))
        .collect();
    let band = (0..BAND_POINTS)
        .map(|p| {
            interval(
                (0..config.n)
                    .map(|r| f64::from(band_values[r * BAND_POINTS + p]))
                    .collect(),
            )
        })
        .collect();
    BootstrapFroc {
        at_rates: rate_intervals.try_into().expect("one interval per FP rate"),
        band_fps,
        band,
    }
}

/// Mean and order-statistic bounds of one statistic's resampled values.
fn interval(mut values: Vec<f64>) -> Interval {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Interval {
        mean: values.iter().sum::<f64>() / n as f64,
        lower: values[(tail * n as f64).floor() as usize],
        upper: values[((1.0 - tail) * n as f64).floor() as usize],
    }
}

/// Serialises non-finite numbers as `null` (JSON has no infinity) and reads
/// `null` back as `+inf`, the only non-finite threshold a curve has.
mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        values
            .iter()
            .map(|v| v.is_finite().then_some(*v))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let values = Vec::<Option<f64>>::deserialize(d)?;
        Ok(values
            .into_iter()
            .map(|v| v.unwrap_or(f64::INFINITY))
            .collect())
    }
}
