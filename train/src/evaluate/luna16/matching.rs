//! Deciding, scan by scan, which CAD marks detect which nodules, and turning
//! the outcome into the entries the FROC analysis ranks.
//!
//! The rules, in the order they apply to one scan:
//!
//! 1. Only the 100 most suspicious marks of a scan count, so that flooding a
//!    scan with marks cannot buy sensitivity. When a scan has more than 100, the
//!    101st highest probability becomes a threshold and only marks strictly above
//!    it survive. Marks tied at the threshold are all dropped, so a scan can keep
//!    fewer than 100 marks; it never keeps more.
//! 2. A mark hits a finding when the squared distance between their centres is
//!    strictly below the squared radius: the mark must lie inside the nodule. A
//!    negative diameter (size unknown) counts as 10 mm.
//! 3. Each annotated nodule hit by at least one mark is one true positive, scored
//!    with the highest probability among its hits; its other hits are "double
//!    detections", neither true nor false positives. A mark inside two nodules
//!    detects both. An annotated nodule nobody hit stays in the sensitivity's
//!    denominator as a miss.
//! 4. Marks hitting an excluded finding (an irrelevant lesion) are dropped
//!    rather than punished, unless they already hit an annotated nodule.
//! 5. Every remaining mark is a false positive.

use std::collections::{HashMap, HashSet};

use super::csv_input::{Finding, Mark};

/// How many marks of one scan the evaluation looks at, at most.
pub const MAX_MARKS_PER_SCAN: usize = 100;

/// The diameter assumed for a finding whose diameter is negative (unknown).
pub const UNKNOWN_DIAMETER_MM: f64 = 10.0;

/// The probability a missed nodule carries into the FROC entries. It never
/// reaches the ranking (missed nodules are flagged `excluded`); it only marks
/// the entry, as the official evaluation's "minimum float" placeholder does.
pub const MISSED_PROBABILITY: f64 = -1_000_000_000.0;

/// One sample of the FROC analysis: a detected or missed nodule, or a false
/// positive mark.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrocEntry {
    /// Position of the entry's scan in the scan list.
    pub scan: usize,
    /// True for nodules (detected or missed), false for false positives.
    pub is_nodule: bool,
    /// The probability the entry is ranked by.
    pub probability: f64,
    /// Missed nodules: counted in the sensitivity's denominator, left out of
    /// the ranking (no mark exists to rank them by).
    pub excluded: bool,
}

/// What matching found, summed over the scan list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Annotated nodules in the listed scans.
    pub nodules: usize,
    /// Nodules hit by at least one mark (the official "true positives").
    pub detected: usize,
    /// Nodules no mark hit (the official "false negatives").
    pub missed: usize,
    /// Marks that hit nothing relevant.
    pub false_positives: usize,
    /// Marks of listed scans that survived the per-scan cap (the official
    /// "total number of candidates").
    pub marks: usize,
    /// Marks dropped because their scan had more than 100.
    pub marks_over_cap: usize,
    /// Marks ignored because they hit an excluded finding.
    pub ignored_excluded: usize,
    /// Extra hits on an already hit nodule, summed over nodules.
    pub ignored_double_hits: usize,
    /// Hits by a mark that had already detected another nodule (a mark inside
    /// two overlapping nodules counts once here).
    pub shared_hits: usize,
    /// Submission rows whose seriesuid is not in the scan list; ignored.
    pub unknown_scan_marks: usize,
}

/// The outcome of matching a submission against the reference.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matching {
    /// Scan by scan, in scan-list order: the nodules in annotation order, then
    /// the false positives in submission order.
    pub entries: Vec<FrocEntry>,
    /// Totals over the scan list.
    pub counts: Counts,
    /// Listed scans with at least one annotated nodule but not a single mark in
    /// the submission: most likely scans the detector never ran on.
    pub scans_without_marks: Vec<String>,
}

/// Whether `mark` lies strictly inside `finding` (rule 2 of the module doc).
pub fn hits(finding: &Finding, mark: &Mark) -> bool {
    let diameter = if finding.diameter_mm < 0.0 {
        UNKNOWN_DIAMETER_MM
    } else {
        finding.diameter_mm
    };
    let radius = diameter / 2.0;
    let [dx, dy, dz] = [0, 1, 2].map(|i| finding.center[i] - mark.center[i]);
    // Summed x, y, z in that order, so the rounding matches the official sum.
    dx * dx + dy * dy + dz * dz < radius * radius
}

/// The marks of one scan that the evaluation looks at (rule 1 of the module
/// doc), in their original order.
pub fn most_suspicious<'a>(marks: &[&'a Mark]) -> Vec<&'a Mark> {
    if marks.len() <= MAX_MARKS_PER_SCAN {
        return marks.to_vec();
    }
    let mut probabilities: Vec<f64> = marks.iter().map(|m| m.probability).collect();
    probabilities.sort_unstable_by(|a, b| b.total_cmp(a));
    let threshold = probabilities[MAX_MARKS_PER_SCAN];
    marks
        .iter()
        .copied()
        .filter(|m| m.probability > threshold)
        .collect()
}

/// Matches `marks` against the `annotations` and `excluded` findings of every
/// scan in `scans`. Findings and marks of scans not in the list are ignored;
/// a scan listed twice is scored twice, as the official evaluation does.
pub fn match_marks(
    annotations: &[Finding],
    excluded: &[Finding],
    marks: &[Mark],
    scans: &[String],
) -> Matching {
    let nodules_by_scan = group(annotations, |f| &f.seriesuid);
    let excluded_by_scan = group(excluded, |f| &f.seriesuid);
    let marks_by_scan = group(marks, |m| &m.seriesuid);
    let listed: HashSet<&str> = scans.iter().map(String::as_str).collect();

    let mut out = Matching::default();
    out.counts.unknown_scan_marks = marks
        .iter()
        .filter(|m| !listed.contains(m.seriesuid.as_str()))
        .count();

    for (scan, uid) in scans.iter().enumerate() {
        let all_marks = of_scan(&marks_by_scan, uid);
        let nodules = of_scan(&nodules_by_scan, uid);
        if all_marks.is_empty() && !nodules.is_empty() {
            out.scans_without_marks.push(uid.clone());
        }
        let irrelevant = of_scan(&excluded_by_scan, uid);
        match_scan(&mut out, scan, all_marks, nodules, irrelevant);
    }
    out
}

/// Rules 1 and 3 to 5 of the module doc for one scan, its entries and
/// counts added to `out`.
fn match_scan(
    out: &mut Matching,
    scan: usize,
    all_marks: &[&Mark],
    nodules: &[&Finding],
    irrelevant: &[&Finding],
) {
    let kept = most_suspicious(all_marks);
    out.counts.marks += kept.len();
    out.counts.marks_over_cap += all_marks.len() - kept.len();
    // Marks not yet claimed by a nodule or an excluded finding.
    let mut unclaimed = vec![true; kept.len()];

    for nodule in nodules {
        let entry = score_nodule(&mut out.counts, scan, nodule, &kept, &mut unclaimed);
        out.entries.push(entry);
    }

    // After all annotated nodules, so that a mark inside both a nodule and
    // an excluded finding stays a true positive.
    for finding in irrelevant {
        for (i, mark) in kept.iter().enumerate() {
            if unclaimed[i] && hits(finding, mark) {
                unclaimed[i] = false;
                out.counts.ignored_excluded += 1;
            }
        }
    }

    for (mark, _) in kept.iter().zip(&unclaimed).filter(|(_, &u)| u) {
        out.counts.false_positives += 1;
        out.entries.push(FrocEntry {
            scan,
            is_nodule: false,
            probability: mark.probability,
            excluded: false,
        });
    }
}

/// The FROC entry of one annotated nodule (rule 3 of the module doc),
/// claiming the `kept` marks that hit it.
fn score_nodule(
    counts: &mut Counts,
    scan: usize,
    nodule: &Finding,
    kept: &[&Mark],
    unclaimed: &mut [bool],
) -> FrocEntry {
    counts.nodules += 1;
    let mut best: Option<f64> = None;
    let mut n_hits = 0;
    for (i, mark) in kept.iter().enumerate() {
        if !hits(nodule, mark) {
            continue;
        }
        n_hits += 1;
        if unclaimed[i] {
            unclaimed[i] = false;
        } else {
            counts.shared_hits += 1;
        }
        if best.is_none_or(|p| mark.probability > p) {
            best = Some(mark.probability);
        }
    }
    match best {
        Some(probability) => {
            counts.detected += 1;
            counts.ignored_double_hits += n_hits - 1;
            FrocEntry {
                scan,
                is_nodule: true,
                probability,
                excluded: false,
            }
        }
        None => {
            counts.missed += 1;
            FrocEntry {
                scan,
                is_nodule: true,
                probability: MISSED_PROBABILITY,
                excluded: true,
            }
        }
    }
}

/// The group of scan `uid`; empty when the scan has none.
fn of_scan<'g, 'a, T>(groups: &'g HashMap<&str, Vec<&'a T>>, uid: &str) -> &'g [&'a T] {
    groups.get(uid).map_or(&[][..], Vec::as_slice)
}

/// Items grouped by seriesuid, each group in input order.
fn group<T>(items: &[T], uid: impl Fn(&T) -> &String) -> HashMap<&str, Vec<&T>> {
    let mut groups: HashMap<&str, Vec<&T>> = HashMap::new();
    for item in items {
        groups.entry(uid(item).as_str()).or_default().push(item);
    }
    groups
}
