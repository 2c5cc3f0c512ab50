//! The one metrics core: confusion counts, losses per class, precision,
//! recall and F-beta, as the book logs them per epoch and as `train eval`
//! reports them.
//!
//! The threshold rule, everywhere: a sample is called positive when
//! P(nodule) > threshold, strictly (the book's `predLabel > 0.5`), so a
//! model that says 0.5 has not said "nodule". Every ratio whose denominator
//! is zero (no positives, no predicted positives, …) is reported as 0
//! instead of the book's NaN, and its name is listed in
//! [`EpochMetrics::zero_division`] so the log can say so.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

pub const THRESHOLD: f64 = 0.5;

/// Per-sample rows kept on the device during a phase (label, P(nodule),
/// loss) and read back once at its end: one host synchronisation per phase,
/// not one per batch.
pub struct MetricRows {
    rows: Tensor,
    filled: i64,
}

impl MetricRows {
    pub fn new(capacity: usize, device: Device) -> Self {
        MetricRows {
            rows: Tensor::zeros([3, capacity as i64], (Kind::Float, device)),
            filled: 0,
        }
    }

    /// Appends a batch: `labels` `[n]` (0/1), `prob_pos` `[n]`, `loss` `[n]`.
    pub fn push(&mut self, labels: &Tensor, prob_pos: &Tensor, loss: &Tensor) {
        let n = labels.size()[0];
        let batch = Tensor::stack(
            &[
                labels.to_kind(Kind::Float),
                prob_pos.detach().to_kind(Kind::Float),
                loss.detach().to_kind(Kind::Float),
            ],
            0,
        );
        self.rows.narrow(1, self.filled, n).copy_(&batch);
        self.filled += n;
    }

    /// Moves the filled rows to the host.
    pub fn to_host(&self) -> Samples {
        let rows = self.rows.narrow(1, 0, self.filled).to_device(Device::Cpu);
        let row = |i: i64| Vec::<f32>::try_from(rows.get(i)).unwrap_or_default();
        Samples {
            labels: row(0).into_iter().map(|l| l > 0.5).collect(),
            prob_pos: row(1),
            loss: row(2),
        }
    }
}

/// One phase's per-sample results on the host.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub labels: Vec<bool>,
    pub prob_pos: Vec<f32>,
    pub loss: Vec<f32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Confusion {
    /// Counts with the module's rule: predicted positive iff `p > threshold`.
    pub fn at(labels: &[bool], prob_pos: &[f32], threshold: f64) -> Self {
        let mut c = Confusion::default();
        for (&label, &p) in labels.iter().zip(prob_pos) {
            match (label, f64::from(p) > threshold) {
                (true, true) => c.tp += 1,
                (true, false) => c.fn_ += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }
}

/// Read back (metrics.jsonl), a value an older version left out, or wrote
/// as `null` (NaN), is NaN; a left-out count is 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default = "EpochMetrics::undefined")]
pub struct EpochMetrics {
    pub samples: u64,
    pub positives: u64,
    pub negatives: u64,
    #[serde(flatten)]
    pub confusion: Confusion,
    #[serde(deserialize_with = "nan_if_null")]
    pub loss_all: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub loss_neg: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub loss_pos: f64,
    /// Percentages.
    #[serde(deserialize_with = "nan_if_null")]
    pub correct_all: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub correct_neg: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub correct_pos: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub precision: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub recall: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub f1: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub f2: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub f05: f64,
    /// Names of the values above that had a zero denominator (reported as 0).
    pub zero_division: Vec<String>,
}

/// JSON has no NaN: serde_json writes it as `null`, read back here.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// `num / den`, or 0 with `name` recorded when `den` is 0.
fn ratio(num: f64, den: f64, name: &'static str, zero: &mut Vec<String>) -> f64 {
    if den == 0.0 {
        zero.push(name.to_owned());
        0.0
    } else {
        num / den
    }
}

fn mean_where(values: &[f32], keep: impl Fn(usize) -> bool) -> (f64, u64) {
    let (mut sum, mut n) = (0.0f64, 0u64);
    for (i, &v) in values.iter().enumerate() {
        if keep(i) {
            sum += v as f64;
            n += 1;
        }
    }
    (sum, n)
}

impl EpochMetrics {
    /// No samples counted and every value undefined: what a record that
    /// names none of them holds.
    pub fn undefined() -> Self {
        let nan = f64::NAN;
        EpochMetrics {
            samples: 0,
            positives: 0,
            negatives: 0,
            confusion: Confusion::default(),
            loss_all: nan,
            loss_neg: nan,
            loss_pos: nan,
            correct_all: nan,
            correct_neg: nan,
            correct_pos: nan,
            precision: nan,
            recall: nan,
            f1: nan,
            f2: nan,
            f05: nan,
            zero_division: Vec::new(),
        }
    }

    /// The metrics at the book's threshold, [`THRESHOLD`].
    pub fn compute(s: &Samples) -> Self {
        Self::at_threshold(s, THRESHOLD)
    }

    /// The metrics with samples called positive when P(nodule) > `threshold`.
    pub fn at_threshold(s: &Samples, threshold: f64) -> Self {
        let c = Confusion::at(&s.labels, &s.prob_pos, threshold);
        let (loss_sum, _) = mean_where(&s.loss, |_| true);
        let (loss_neg_sum, _) = mean_where(&s.loss, |i| !s.labels[i]);
        let (loss_pos_sum, _) = mean_where(&s.loss, |i| s.labels[i]);
        let (positives, negatives) = (c.tp + c.fn_, c.tn + c.fp);
        Self::from_counts(
            c,
            [
                Some((loss_sum, positives + negatives)),
                Some((loss_neg_sum, negatives)),
                Some((loss_pos_sum, positives)),
            ],
        )
    }

    /// A segmentation phase's metrics (chapter 13), over pixels: the
    /// counts are pixels called positive when P > [`THRESHOLD`], so recall
    /// is the book's `percent_all/tp` / 100 and F1 its Dice; the loss is
    /// the mean per-sample Dice loss over `samples` samples, not split by
    /// class.
    pub fn from_pixels(c: Confusion, loss_sum: f64, samples: u64) -> Self {
        Self::from_counts(c, [Some((loss_sum, samples)), None, None])
    }

    /// Every ratio from the counts; `losses` are (sum, count) for all, the
    /// negatives and the positives, `None` where a task has no such loss.
    fn from_counts(c: Confusion, losses: [Option<(f64, u64)>; 3]) -> Self {
        let mut zero = Vec::new();
        let z = &mut zero;
        let (positives, negatives) = (c.tp + c.fn_, c.tn + c.fp);
        let samples = positives + negatives;
        let [loss_all, loss_neg, loss_pos] = [("loss/all", 0), ("loss/neg", 1), ("loss/pos", 2)]
            .map(|(name, i)| losses[i].map_or(f64::NAN, |(sum, n)| ratio(sum, n as f64, name, z)));
        let correct_all = 100.0 * ratio((c.tp + c.tn) as f64, samples as f64, "correct/all", z);
        let correct_neg = 100.0 * ratio(c.tn as f64, negatives as f64, "correct/neg", z);
        let correct_pos = 100.0 * ratio(c.tp as f64, positives as f64, "correct/pos", z);
        let precision = ratio(c.tp as f64, (c.tp + c.fp) as f64, "pr/precision", z);
        let recall = ratio(c.tp as f64, positives as f64, "pr/recall", z);
        let f_beta = |beta: f64, name, z: &mut Vec<String>| {
            let b2 = beta * beta;
            ratio(
                (1.0 + b2) * precision * recall,
                b2 * precision + recall,
                name,
                z,
            )
        };
        let f1 = f_beta(1.0, "pr/f1_score", z);
        let f2 = f_beta(2.0, "pr/f2_score", z);
        let f05 = f_beta(0.5, "pr/f05_score", z);
        EpochMetrics {
            samples,
            positives,
            negatives,
            confusion: c,
            loss_all,
            loss_neg,
            loss_pos,
            correct_all,
            correct_neg,
            correct_pos,
            precision,
            recall,
            f1,
            f2,
            f05,
            zero_division: zero,
        }
    }

    /// The scalars under the book's TensorBoard tags (plus F2 and F0.5).
    pub fn scalars(&self) -> [(&'static str, f64); 11] {
        [
            ("loss/all", self.loss_all),
            ("loss/neg", self.loss_neg),
            ("loss/pos", self.loss_pos),
            ("correct/all", self.correct_all),
            ("correct/neg", self.correct_neg),
            ("correct/pos", self.correct_pos),
            ("pr/precision", self.precision),
            ("pr/recall", self.recall),
            ("pr/f1_score", self.f1),
            ("pr/f2_score", self.f2),
            ("pr/f05_score", self.f05),
        ]
    }

    /// Three table lines in the book's log style.
    pub fn table(&self, epoch: usize, phase: &str) -> String {
        let c = &self.confusion;
        let mut out = format!(
            "E{epoch} {phase:<8} {:.4} loss, {:5.1}% correct, {:.4} precision, {:.4} recall, {:.4} F1, {:.4} F2, {:.4} F0.5\n",
            self.loss_all, self.correct_all, self.precision, self.recall, self.f1, self.f2, self.f05
        );
        // A task without per-class losses (pixels) has none to show.
        let loss = |v: f64| {
            if v.is_nan() {
                "n/a".to_owned()
            } else {
                format!("{v:.4}")
            }
        };
        out += &format!(
            "E{epoch} {:<8} {} loss, {:5.1}% correct ({} of {})\n",
            format!("{phase}_neg"),
            loss(self.loss_neg),
            self.correct_neg,
            c.tn,
            self.negatives
        );
        out += &format!(
            "E{epoch} {:<8} {} loss, {:5.1}% correct ({} of {})",
            format!("{phase}_pos"),
            loss(self.loss_pos),
            self.correct_pos,
            c.tp,
            self.positives
        );
        if !self.zero_division.is_empty() {
            out += &format!(
                "\nE{epoch} {phase:<8} zero denominator, reported as 0: {}",
                self.zero_division.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rows: &[(bool, f32, f32)]) -> Samples {
        Samples {
            labels: rows.iter().map(|r| r.0).collect(),
            prob_pos: rows.iter().map(|r| r.1).collect(),
            loss: rows.iter().map(|r| r.2).collect(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn hand_computed_confusion_matrix() {
        // 3 positives (2 found), 5 negatives (1 false alarm); 0.5 itself is negative.
        let s = samples(&[
            (true, 0.9, 0.1),
            (true, 0.6, 0.5),
            (true, 0.5, 0.7),
            (false, 0.7, 1.2),
            (false, 0.5, 0.7),
            (false, 0.1, 0.1),
            (false, 0.2, 0.2),
            (false, 0.0, 0.0),
        ]);
        let m = EpochMetrics::compute(&s);
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 4,
                fn_: 1
            }
        );
        assert_eq!((m.samples, m.positives, m.negatives), (8, 3, 5));
        assert!(close(m.loss_all, 3.5 / 8.0));
        assert!(close(m.loss_pos, 1.3 / 3.0));
        assert!(close(m.loss_neg, 2.2 / 5.0));
        assert!(close(m.correct_all, 75.0));
        assert!(close(m.correct_neg, 80.0));
        assert!(close(m.correct_pos, 200.0 / 3.0));
        let (p, r) = (2.0 / 3.0, 2.0 / 3.0);
        assert!(close(m.precision, p) && close(m.recall, r));
        assert!(close(m.f1, 2.0 * p * r / (p + r)));
        assert!(close(m.f2, 5.0 * p * r / (4.0 * p + r)));
        assert!(close(m.f05, 1.25 * p * r / (0.25 * p + r)));
        assert!(m.zero_division.is_empty());
    }

    #[test]
    fn precision_and_recall_differ_in_f_beta() {
        // tp 1, fp 3, fn 0: P 0.25, R 1 → F2 favours recall, F0.5 precision.
        let s = samples(&[
            (true, 0.8, 0.0),
            (false, 0.9, 0.0),
            (false, 0.9, 0.0),
            (false, 0.9, 0.0),
        ]);
        let m = EpochMetrics::compute(&s);
        assert!(close(m.precision, 0.25) && close(m.recall, 1.0));
        assert!(close(m.f1, 0.4));
        assert!(close(m.f2, 5.0 * 0.25 / (4.0 * 0.25 + 1.0)));
        assert!(close(m.f05, 1.25 * 0.25 / (0.25 * 0.25 + 1.0)));
        assert!(m.f2 > m.f1 && m.f1 > m.f05);
    }

    #[test]
    fn all_negative_predictions_give_zero_precision_and_say_so() {
        let s = samples(&[(true, 0.1, 2.0), (false, 0.2, 0.1), (false, 0.3, 0.2)]);
        let m = EpochMetrics::compute(&s);
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 0,
                fp: 0,
                tn: 2,
                fn_: 1
            }
        );
        assert_eq!(
            (m.precision, m.recall, m.f1, m.f2, m.f05),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(
            m.zero_division,
            vec!["pr/precision", "pr/f1_score", "pr/f2_score", "pr/f05_score"]
        );
        assert!(m
            .table(1, "val")
            .contains("zero denominator, reported as 0: pr/precision"));
    }

    #[test]
    fn a_phase_without_positives_reports_zeros_not_nan() {
        let s = samples(&[(false, 0.2, 0.5), (false, 0.9, 1.5)]);
        let m = EpochMetrics::compute(&s);
        assert_eq!((m.loss_pos, m.correct_pos, m.recall), (0.0, 0.0, 0.0));
        assert!(close(m.correct_neg, 50.0) && close(m.loss_neg, 1.0));
        for name in ["loss/pos", "correct/pos", "pr/recall", "pr/f1_score"] {
            assert!(m.zero_division.iter().any(|z| z == name), "{name}");
        }
        assert!(!m.zero_division.iter().any(|z| z == "pr/precision"));
        let empty = EpochMetrics::compute(&Samples::default());
        assert_eq!(empty.samples, 0);
        assert!(empty.scalars().iter().all(|(_, v)| *v == 0.0));
    }

    #[test]
    fn device_rows_round_trip_to_the_host() {
        let mut rows = MetricRows::new(5, Device::Cpu);
        rows.push(
            &Tensor::from_slice(&[1i64, 0]),
            &Tensor::from_slice(&[0.75f32, 0.25]),
            &Tensor::from_slice(&[0.5f32, 1.5]),
        );
        rows.push(
            &Tensor::from_slice(&[0i64]),
            &Tensor::from_slice(&[0.5f32]),
            &Tensor::from_slice(&[2.0f32]),
        );
        let s = rows.to_host();
        assert_eq!(s.labels, vec![true, false, false]);
        assert_eq!(s.prob_pos, vec![0.75, 0.25, 0.5]);
        assert_eq!(s.loss, vec![0.5, 1.5, 2.0]);
    }

    #[test]
    fn pixel_metrics_show_no_per_class_loss_in_the_table() {
        let c = Confusion {
            tp: 30,
            fp: 10,
            tn: 950,
            fn_: 10,
        };
        let m = EpochMetrics::from_pixels(c, 1.5, 3);
        assert!((m.loss_all - 0.5).abs() < 1e-12);
        assert!((m.recall - 0.75).abs() < 1e-12 && (m.precision - 0.75).abs() < 1e-12);
        let table = m.table(2, "val");
        assert!(table.contains("val_neg  n/a loss"), "{table}");
        assert!(table.contains("val_pos  n/a loss"), "{table}");
        assert!(table.contains("0.5000 loss"), "{table}");
        assert!(!table.contains("NaN"), "{table}");
    }
}
