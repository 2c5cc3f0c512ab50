//! Chapter 14's labels: which cached candidates are benign or malignant
//! nodules, from the book's `annotations_with_malignancy.csv`.
//!
//! The cache is chapter 12's candidate list, whose positives come from
//! `candidates.csv`; the malignancy labels belong to the annotation rows.
//! A positive takes the label of the row it lies in: of its series' rows
//! whose centre is within half the row's diameter of it on every axis (the
//! nodule's box), the nearest. A positive in no row's box has no label and
//! is left out of malignancy training and validation (the run counts it);
//! every negative is a non-nodule, label 0.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared::cache::CacheReader;

use super::sampler::MalignancyLists;
use shared::luna::{read_annotations_with_malignancy_csv, LunaError, MalignancyRow};

/// What a run classifies: `[data] label`, `--label`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Nodule against non-nodule candidates (chapters 11–12).
    #[default]
    Nodule,
    /// Malignant against benign nodules and non-nodules (chapter 14).
    Malignancy,
}

impl Label {
    pub fn is_nodule(&self) -> bool {
        *self == Label::Nodule
    }

    /// The spelling of config files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Nodule => "nodule",
            Label::Malignancy => "malignancy",
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Label {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nodule" => Ok(Label::Nodule),
            "malignancy" => Ok(Label::Malignancy),
            other => Err(format!("{other:?}: expected nodule or malignancy")),
        }
    }
}

/// A cached candidate as the malignancy task sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoduleClass {
    /// A negative candidate (label 0).
    NonNodule,
    /// A positive whose annotation row says benign (label 0).
    Benign,
    /// A positive whose annotation row says malignant (label 1).
    Malignant,
    /// A positive in no annotation row's box: no label, left out.
    Unmatched,
}

impl NoduleClass {
    /// Whether training or validation may use it.
    pub fn is_labelled(self) -> bool {
        self != NoduleClass::Unmatched
    }

    pub fn is_nodule(self) -> bool {
        matches!(self, NoduleClass::Benign | NoduleClass::Malignant)
    }

    pub fn is_malignant(self) -> bool {
        self == NoduleClass::Malignant
    }
}

/// What [`classify`] needs of a candidate.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub series_uid: &'a str,
    pub center_xyz: [f64; 3],
    pub is_nodule: bool,
}

/// Each candidate's class: negatives are non-nodules, positives take the
/// malignancy of their row (see the module documentation).
pub fn classify<'a>(
    candidates: impl IntoIterator<Item = Candidate<'a>>,
    rows: &[MalignancyRow],
) -> Vec<NoduleClass> {
    let mut by_series: HashMap<&str, Vec<&MalignancyRow>> = HashMap::new();
    for row in rows {
        by_series
            .entry(row.series_uid.as_str())
            .or_default()
            .push(row);
    }
    candidates
        .into_iter()
        .map(|c| {
            if !c.is_nodule {
                return NoduleClass::NonNodule;
            }
            let series = by_series.get(c.series_uid).map_or(&[][..], Vec::as_slice);
            match row_of(c.center_xyz, series) {
                Some(row) if row.malignant => NoduleClass::Malignant,
                Some(_) => NoduleClass::Benign,
                None => NoduleClass::Unmatched,
            }
        })
        .collect()
}

/// The nearest of `rows` (one series') whose box, half its diameter on
/// each side of its centre, holds `center`; the first of equally near ones.
pub fn row_of<'r>(center: [f64; 3], rows: &[&'r MalignancyRow]) -> Option<&'r MalignancyRow> {
    let mut best: Option<(f64, &MalignancyRow)> = None;
    for &row in rows {
        let delta: Vec<f64> = (0..3).map(|k| center[k] - row.center_xyz[k]).collect();
        if delta.iter().any(|d| d.abs() > row.diameter_mm / 2.0) {
            continue;
        }
        let distance: f64 = delta.iter().map(|d| d * d).sum();
        if best.is_none_or(|(nearest, _)| distance < nearest) {
            best = Some((distance, row));
        }
    }
    best.map(|(_, row)| row)
}

#[derive(Debug, thiserror::Error)]
pub enum MalignancyError {
    #[error("--malignancy-csv: {0}")]
    Csv(#[from] LunaError),
    #[error("--malignancy-csv {path}: no row matches any positive candidate of the cache (are they the same data set?)")]
    NoMatch { path: PathBuf },
}

/// Every cache entry's [`NoduleClass`], by cache index.
#[derive(Clone, Debug)]
pub struct MalignancyLabels {
    classes: Vec<NoduleClass>,
}

/// How many of each class a set of candidates holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts {
    pub malignant: usize,
    pub benign: usize,
    pub non_nodules: usize,
    pub unmatched: usize,
}

impl MalignancyLabels {
    /// Reads `csv` and labels `reader`'s candidates; a file none of whose
    /// rows matches a positive is refused (another data set's labels).
    pub fn read(reader: &CacheReader, csv: &Path) -> Result<Self, MalignancyError> {
        let rows = read_annotations_with_malignancy_csv(csv)?;
        let candidates = reader.entries().iter().map(|e| Candidate {
            series_uid: reader.series_uid(e.series),
            center_xyz: e.center_xyz,
            is_nodule: e.is_nodule,
        });
        let labels = MalignancyLabels::new(classify(candidates, &rows));
        if labels.classes.iter().all(|c| !c.is_nodule()) {
            return Err(MalignancyError::NoMatch {
                path: csv.to_owned(),
            });
        }
        Ok(labels)
    }

    pub fn new(classes: Vec<NoduleClass>) -> Self {
        MalignancyLabels { classes }
    }

    /// The class of cache index `i` (an index past the cache is unmatched).
    pub fn class(&self, i: u32) -> NoduleClass {
        self.classes
            .get(i as usize)
            .copied()
            .unwrap_or(NoduleClass::Unmatched)
    }

    /// The label of every cache index, as the loader hands it to the model.
    pub fn targets(&self) -> Vec<bool> {
        self.classes.iter().map(|c| c.is_malignant()).collect()
    }

    /// The counts over `indices`.
    pub fn counts(&self, indices: &[u32]) -> ClassCounts {
        let mut n = ClassCounts::default();
        for &i in indices {
            match self.class(i) {
                NoduleClass::Malignant => n.malignant += 1,
                NoduleClass::Benign => n.benign += 1,
                NoduleClass::NonNodule => n.non_nodules += 1,
                NoduleClass::Unmatched => n.unmatched += 1,
            }
        }
        n
    }

    /// `train`'s malignant, benign and non-nodule candidates, each in
    /// `train`'s order; unmatched ones are in none.
    pub fn lists(&self, train: &[u32]) -> MalignancyLists {
        let mut lists = MalignancyLists::default();
        for &i in train {
            match self.class(i) {
                NoduleClass::Malignant => lists.malignant.push(i),
                NoduleClass::Benign => lists.benign.push(i),
                NoduleClass::NonNodule => lists.non_nodules.push(i),
                NoduleClass::Unmatched => {}
            }
        }
        lists
    }

    /// The split's samples for chapter 14: training keeps every labelled
    /// candidate, validation only the nodules (the book's validation set
    /// is its benign and malignant lists).
    pub fn restrict(&self, train: Vec<u32>, val: Vec<u32>) -> (Vec<u32>, Vec<u32>) {
        let train = train
            .into_iter()
            .filter(|&i| self.class(i).is_labelled())
            .collect();
        let val = val
            .into_iter()
            .filter(|&i| self.class(i).is_nodule())
            .collect();
        (train, val)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: &str, center: [f64; 3], diameter_mm: f64, malignant: bool) -> MalignancyRow {
        MalignancyRow {
            series_uid: uid.to_owned(),
            center_xyz: center,
            diameter_mm,
            malignant,
        }
    }

    fn positive(uid: &str, center: [f64; 3]) -> Candidate<'_> {
        Candidate {
            series_uid: uid,
            center_xyz: center,
            is_nodule: true,
        }
    }

    #[test]
    fn a_positive_takes_the_label_of_the_row_whose_box_holds_it() {
        let rows = [
            row("a", [0.0, 0.0, 0.0], 10.0, true),
            row("a", [50.0, 0.0, 0.0], 6.0, false),
            row("b", [100.0, 0.0, 0.0], 20.0, true),
        ];
        let got = classify(
            [
                // 4.9 mm off on x: inside the 10 mm row's ±5 mm box.
                positive("a", [4.9, -4.9, 4.9]),
                // 5.1 mm off on one axis: outside, although near.
                positive("a", [0.0, 5.1, 0.0]),
                positive("a", [51.0, 1.0, -2.9]),
                // Another series' row never matches.
                positive("b", [0.0, 0.0, 0.0]),
                positive("c", [100.0, 0.0, 0.0]),
                Candidate {
                    series_uid: "a",
                    center_xyz: [0.0, 0.0, 0.0],
                    is_nodule: false,
                },
            ],
            &rows,
        );
        use NoduleClass::*;
        assert_eq!(
            got,
            [Malignant, Unmatched, Benign, Unmatched, Unmatched, NonNodule]
        );
    }

    #[test]
    fn of_two_boxes_holding_a_positive_the_nearest_row_labels_it() {
        // A big malignant nodule's box also holds a small benign one.
        let rows = [
            row("a", [0.0, 0.0, 0.0], 30.0, true),
            row("a", [10.0, 0.0, 0.0], 8.0, false),
        ];
        let got = classify(
            [
                positive("a", [9.0, 0.0, 0.0]),
                positive("a", [2.0, 0.0, 0.0]),
            ],
            &rows,
        );
        assert_eq!(got, [NoduleClass::Benign, NoduleClass::Malignant]);
        // Equally near: the first row in file order.
        let tie = [
            row("a", [-1.0, 0.0, 0.0], 4.0, false),
            row("a", [1.0, 0.0, 0.0], 4.0, true),
        ];
        let refs: Vec<&MalignancyRow> = tie.iter().collect();
        assert!(!row_of([0.0; 3], &refs).unwrap().malignant);
    }

    #[test]
    fn restriction_drops_unmatched_positives_and_keeps_only_nodules_for_validation() {
        use NoduleClass::*;
        let labels = MalignancyLabels::new(vec![
            Malignant, Benign, Unmatched, NonNodule, Malignant, Unmatched, NonNodule,
        ]);
        let (train, val) = labels.restrict(vec![0, 2, 3, 6], vec![1, 4, 5, 6]);
        assert_eq!(train, [0, 3, 6]);
        assert_eq!(val, [1, 4]);
        assert_eq!(
            labels.counts(&(0..7).collect::<Vec<_>>()),
            ClassCounts {
                malignant: 2,
                benign: 1,
                non_nodules: 2,
                unmatched: 2
            }
        );
        assert_eq!(
            labels.targets(),
            [true, false, false, false, true, false, false]
        );
        assert_eq!(labels.class(99), Unmatched);
        let lists = labels.lists(&[6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(
            (lists.malignant, lists.benign, lists.non_nodules),
            (vec![4, 0], vec![1], vec![6, 3])
        );
    }

    #[test]
    fn labels_parse_and_print_as_config_files_spell_them() {
        for label in [Label::Nodule, Label::Malignancy] {
            assert_eq!(label.to_string().parse::<Label>(), Ok(label));
        }
        assert!("cancer".parse::<Label>().is_err());
        assert_eq!(Label::default(), Label::Nodule);
    }
}
