//! The book's end-to-end check (`p2ch14/nodule_analysis.py`,
//! `match_and_score` and `print_confusion`): each true nodule against the
//! scan's detections, a 3×4 table of what happened to it.
//!
//! - A detection matches a nodule when their distance is below 0.7 × the
//!   nodule's diameter.
//! - A detection's class: 1 "filtered out" when P(nodule) is below the
//!   nodule threshold, else 2 "predicted benign" when P(malignant) is below
//!   the malignancy threshold (always without a malignancy model), else 3
//!   "predicted malignant".
//! - A nodule keeps the highest class of the detections matching it (0,
//!   "complete miss", without any); a detection matching several nodules
//!   counts for each; detections matching none count in the non-nodule row.
//!
//! The book compares P(malignant) with the nodule threshold (both 0.5 by
//! default); here each has its own, the same by default.

use serde::Serialize;

/// A detection is near a nodule below this many of its diameters.
pub const MATCH_DIAMETERS: f64 = 0.7;

/// A true nodule of a scan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrueNodule {
    pub center_xyz: [f64; 3],
    pub diameter_mm: f64,
    /// `None` when the annotations do not say.
    pub malignant: Option<bool>,
}

/// One classified candidate, as the table sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub center_xyz: [f64; 3],
    pub p_nodule: f32,
    /// `None` without a malignancy model or below the nodule threshold.
    pub p_malignant: Option<f32>,
}

/// The thresholds detections are classed by.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    pub nodule: f32,
    pub malignant: f32,
}

pub const ROWS: [&str; 3] = ["Non-nodules", "Benign", "Malignant"];
pub const COLUMNS: [&str; 4] = [
    "Complete miss",
    "Filtered out",
    "Pred. benign",
    "Pred. malignant",
];

/// The table as shown: row and column labels and the counts under them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShapedTable {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

/// Counts by truth (rows [`ROWS`]) and outcome (columns [`COLUMNS`]); the
/// non-nodule row has no "complete miss" (those are never seen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub counts: [[u64; 4]; 3],
}

impl std::ops::AddAssign for Confusion {
    fn add_assign(&mut self, other: Confusion) {
        for (row, add) in self.counts.iter_mut().zip(other.counts) {
            for (c, a) in row.iter_mut().zip(add) {
                *c += a;
            }
        }
    }
}

impl Confusion {
    /// True nodules (benign and malignant rows).
    pub fn nodules(&self) -> u64 {
        self.counts[1..].iter().flatten().sum()
    }

    /// True nodules some detection above the nodule threshold matched.
    pub fn found(&self) -> u64 {
        self.counts[1..].iter().map(|r| r[2] + r[3]).sum()
    }

    /// Detections above the nodule threshold that match no nodule.
    pub fn false_positives(&self) -> u64 {
        self.counts[0][2] + self.counts[0][3]
    }

    /// The table as the book prints it: with a malignancy model its four
    /// columns, else "Pred. nodule" for the last two together; when the
    /// annotations do not tell benign from malignant (`truth_malignancy`
    /// false) every nodule is in the second row, called "Nodules". The
    /// terminal and report.json both show this shape.
    pub fn shaped(&self, with_malignancy: bool, truth_malignancy: bool) -> ShapedTable {
        let mut columns: Vec<String> = COLUMNS[..2].iter().map(|s| s.to_string()).collect();
        if with_malignancy {
            columns.extend(COLUMNS[2..].iter().map(|s| s.to_string()));
        } else {
            columns.push("Pred. nodule".into());
        }
        let rows = if truth_malignancy { 3 } else { 2 };
        let mut labels = Vec::with_capacity(rows);
        let mut counts = Vec::with_capacity(rows);
        for (i, (label, row)) in ROWS.iter().zip(&self.counts).take(rows).enumerate() {
            let nodules_row = !truth_malignancy && i == 1;
            labels.push(if nodules_row { "Nodules" } else { label }.to_string());
            let mut values = row[..2].to_vec();
            if with_malignancy {
                values.extend(&row[2..]);
            } else {
                values.push(row[2] + row[3]);
            }
            counts.push(values);
        }
        ShapedTable {
            rows: labels,
            columns,
            counts,
        }
    }

    /// [`Confusion::shaped`] as text, under `title`.
    pub fn render(&self, title: &str, with_malignancy: bool, truth_malignancy: bool) -> String {
        let table = self.shaped(with_malignancy, truth_malignancy);
        let cell = |s: &str| format!("{s:>16}");
        let header = std::iter::once(String::new()).chain(table.columns.iter().cloned());
        let mut lines = vec![
            title.to_owned(),
            header.map(|s| cell(&s)).collect::<Vec<_>>().join(" | "),
        ];
        for (i, (label, row)) in table.rows.iter().zip(&table.counts).enumerate() {
            let mut values: Vec<String> = row.iter().map(u64::to_string).collect();
            // Non-nodules are never "completely missed": nothing saw them.
            if i == 0 {
                values[0].clear();
            }
            let cells = std::iter::once(label.clone()).chain(values);
            lines.push(cells.map(|s| cell(&s)).collect::<Vec<_>>().join(" | "));
        }
        lines.join("\n")
    }
}

/// Detection class: 1 filtered out, 2 predicted benign (or nodule), 3
/// predicted malignant.
fn class_of(d: &Detection, t: Thresholds) -> usize {
    if d.p_nodule < t.nodule {
        1
    } else if d.p_malignant.is_none_or(|p| p < t.malignant) {
        2
    } else {
        3
    }
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// The book's `match_and_score` for one scan.
pub fn match_and_score(
    detections: &[Detection],
    truth: &[TrueNodule],
    thresholds: Thresholds,
) -> Confusion {
    let classes: Vec<usize> = detections.iter().map(|d| class_of(d, thresholds)).collect();
    let mut matched = vec![false; detections.len()];
    let mut confusion = Confusion::default();
    for nodule in truth {
        let mut best = 0;
        for (k, d) in detections.iter().enumerate() {
            if distance(nodule.center_xyz, d.center_xyz) / nodule.diameter_mm < MATCH_DIAMETERS {
                best = best.max(classes[k]);
                matched[k] = true;
            }
        }
        let row = if nodule.malignant == Some(true) { 2 } else { 1 };
        confusion.counts[row][best] += 1;
    }
    for (class, matched) in classes.iter().zip(matched) {
        if !matched {
            confusion.counts[0][*class] += 1;
        }
    }
    confusion
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        nodule: 0.5,
        malignant: 0.5,
    };

    fn det(x: f64, p: f32, mal: Option<f32>) -> Detection {
        Detection {
            center_xyz: [x, 0.0, 0.0],
            p_nodule: p,
            p_malignant: mal,
        }
    }

    fn nodule(x: f64, d: f64, malignant: bool) -> TrueNodule {
        TrueNodule {
            center_xyz: [x, 0.0, 0.0],
            diameter_mm: d,
            malignant: Some(malignant),
        }
    }

    #[test]
    fn a_nodule_keeps_its_best_detection_and_unmatched_detections_are_non_nodules() {
        let truth = [nodule(0.0, 10.0, true), nodule(100.0, 10.0, false)];
        let detections = [
            det(1.0, 0.9, Some(0.2)),  // matches nodule 0: benign
            det(-2.0, 0.9, Some(0.8)), // matches nodule 0: malignant, wins
            det(50.0, 0.7, Some(0.9)), // nothing: non-nodule, malignant
            det(60.0, 0.1, None),      // nothing: filtered out
            det(107.5, 0.9, None),     // 7.5 > 0.7 × 10: no match with nodule 1
        ];
        let c = match_and_score(&detections, &truth, T);
        assert_eq!(c.counts[2], [0, 0, 0, 1]);
        assert_eq!(c.counts[1], [1, 0, 0, 0]);
        assert_eq!(c.counts[0], [0, 1, 1, 1]);
        assert_eq!((c.nodules(), c.found(), c.false_positives()), (2, 1, 2));
    }

    #[test]
    fn no_detections_miss_every_nodule_and_no_truth_counts_every_detection() {
        let truth = [nodule(0.0, 5.0, false), nodule(9.0, 5.0, true)];
        let c = match_and_score(&[], &truth, T);
        assert_eq!(c.counts[1][0] + c.counts[2][0], 2);
        let c = match_and_score(&[det(0.0, 0.6, None), det(1.0, 0.4, None)], &[], T);
        assert_eq!(c.counts[0], [0, 1, 1, 0]);
    }

    #[test]
    fn the_render_merges_the_predicted_columns_without_malignancy() {
        let mut c = Confusion::default();
        c.counts[1] = [1, 2, 3, 4];
        let text = c.render("Total", false, true);
        assert!(text.contains("Pred. nodule"), "{text}");
        assert!(
            text.lines().nth(3).unwrap().ends_with("               7"),
            "{text}"
        );
        assert!(c.render("Total", true, true).contains("Pred. malignant"));
        // Annotations without malignancy: one nodule row, "Nodules".
        let unknown = c.render("Total", false, false);
        assert_eq!(unknown.lines().count(), 4, "{unknown}");
        assert!(
            unknown.lines().nth(3).unwrap().contains("Nodules"),
            "{unknown}"
        );
    }

    #[test]
    fn report_json_gets_the_shape_the_terminal_shows() {
        let c = Confusion {
            counts: [[0, 5, 1, 2], [1, 2, 3, 4], [0, 1, 0, 6]],
        };
        let shaped = c.shaped(false, false);
        assert_eq!(shaped.rows, ["Non-nodules", "Nodules"]);
        assert_eq!(
            shaped.columns,
            ["Complete miss", "Filtered out", "Pred. nodule"]
        );
        assert_eq!(shaped.counts, [vec![0, 5, 3], vec![1, 2, 7]]);
        let full = c.shaped(true, true);
        assert_eq!(full.rows, ROWS);
        assert_eq!(full.columns, COLUMNS);
        assert_eq!(full.counts[2], [0, 1, 0, 6]);
    }
}
