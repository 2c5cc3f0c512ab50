//! What `train analyze` leaves behind: `nodules.csv` (every candidate, the
//! LUNA16 submission columns first so `train score` reads it), the
//! per-scan records and totals of `report.json`, and the short table the
//! terminal shows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::components::{Centre, CentreRule};
use super::matching::{Confusion, ShapedTable, Thresholds};
use super::scan::{ClassifiedCandidate, ScanAnalysis, StageSeconds};
use crate::evaluate::luna16::Score;

pub const NODULES_FILE: &str = "nodules.csv";
pub const REPORT_FILE: &str = "report.json";
pub const NODULES_HEADER: &str = "seriesuid,coordX,coordY,coordZ,probability,malignancy";

/// One candidate as report.json lists it.
#[derive(Clone, Debug, Serialize)]
pub struct NoduleRecord {
    pub center_xyz: [f64; 3],
    pub center_irc: [f64; 3],
    pub voxels: u64,
    /// Which centre of its component it is (`--centres`).
    pub centre: Centre,
    pub p_nodule: f32,
    pub p_malignant: Option<f32>,
}

impl From<&ClassifiedCandidate> for NoduleRecord {
    fn from(c: &ClassifiedCandidate) -> Self {
        NoduleRecord {
            center_xyz: c.candidate.center_xyz,
            center_irc: c.candidate.center_irc,
            voxels: c.candidate.voxels,
            centre: c.candidate.centre,
            p_nodule: c.p_nodule,
            p_malignant: c.p_malignant,
        }
    }
}

/// One analysed scan.
#[derive(Clone, Debug, Serialize)]
pub struct ScanRecord {
    pub series_uid: String,
    pub scan: PathBuf,
    pub shape: [usize; 3],
    pub candidates: usize,
    /// At or above the threshold, likeliest first.
    pub nodules: Vec<NoduleRecord>,
    pub picture: PathBuf,
    pub mask: Option<PathBuf>,
    pub seconds: StageSeconds,
    /// Against the truth, when there is one.
    pub confusion: Option<Confusion>,
}

/// A scan that could not be analysed, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub scan: PathBuf,
    pub reason: String,
}

/// The models an analysis ran.
#[derive(Clone, Debug, Serialize)]
pub struct ModelFiles {
    pub segmentation: PathBuf,
    pub nodule: PathBuf,
    pub malignancy: Option<PathBuf>,
}

/// The table over every scanned nodule and candidate, as report.json has it
/// (the shape the terminal shows).
#[derive(Clone, Debug, Serialize)]
pub struct TableRecord {
    pub annotations: PathBuf,
    #[serde(flatten)]
    pub table: ShapedTable,
    pub nodules: u64,
    pub found: u64,
    pub false_positives: u64,
    pub false_positives_per_scan: f64,
}

impl TableRecord {
    pub fn new(annotations: &Path, total: &Confusion, table: ShapedTable, scans: usize) -> Self {
        TableRecord {
            annotations: annotations.to_owned(),
            table,
            nodules: total.nodules(),
            found: total.found(),
            false_positives: total.false_positives(),
            false_positives_per_scan: total.false_positives() as f64 / scans.max(1) as f64,
        }
    }
}

/// report.json.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: String,
    pub models: ModelFiles,
    pub device: String,
    pub compute: String,
    pub thresholds: Thresholds,
    /// Where components got their candidates (`--centres`).
    pub centres: CentreRule,
    /// Whether P is the mean over each crop's in-plane flips.
    pub flip_average: bool,
    pub scans: Vec<ScanRecord>,
    pub skipped: Vec<Skipped>,
    pub table: Option<TableRecord>,
    /// The official LUNA16 FROC of nodules.csv over the analysed scans.
    pub froc: Option<Score>,
}

/// nodules.csv's rows of one scan: every candidate, in label order.
pub fn csv_rows(series_uid: &str, analysis: &ScanAnalysis, out: &mut String) {
    let uid = shared::csv_write::field(series_uid);
    for c in &analysis.candidates {
        let [x, y, z] = c.candidate.center_xyz;
        let malignancy = c.p_malignant.map_or_else(String::new, |p| p.to_string());
        // Rust's `{}` is the shortest text that reads back to the same value.
        let _ = writeln!(out, "{uid},{x},{y},{z},{},{malignancy}", c.p_nodule);
    }
}

/// The terminal's lines for a scan's nodules (none: one line saying why).
pub fn nodule_table(nodules: &[&ClassifiedCandidate], candidates: usize, threshold: f32) -> String {
    if candidates == 0 {
        return "  no candidates: the segmentation marked nothing that survives the erosion\n"
            .into();
    }
    if nodules.is_empty() {
        return format!("  no candidate reaches P(nodule) {threshold}\n");
    }
    let mut text = format!(
        "  {:>3} {:>9} {:>11} {:>9} {:>9} {:>9} {:>7}\n",
        "#", "P(nodule)", "P(malignant)", "x mm", "y mm", "z mm", "voxels"
    );
    for (k, n) in nodules.iter().enumerate() {
        let [x, y, z] = n.candidate.center_xyz;
        let mal = n
            .p_malignant
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.3}"));
        let _ = writeln!(
            text,
            "  {:>3} {:>9.3} {mal:>11} {x:>9.1} {y:>9.1} {z:>9.1} {:>7}",
            k + 1,
            n.p_nodule,
            n.candidate.voxels
        );
    }
    text
}
