//! LUNA16's official detection score, computed from the challenge's CSV files:
//! a submission of CAD marks (`seriesuid,coordX,coordY,coordZ,probability`)
//! against `annotations.csv`, `annotations_excluded.csv` and a scan list.
//!
//! It reproduces the organisers' evaluation script number for number (the CPM
//! and the sensitivities at 1/8 … 8 false positives per scan, and every count
//! of `CADAnalysis.txt`), because a score is only comparable with published
//! ones when every rule is the same: the 100-marks-per-scan cap with its tie
//! rule, the strict inside-the-radius test, one hit per nodule at its highest
//! probability, marks on excluded findings ignored, scikit-learn's ROC points
//! and numpy's interpolation. The bootstrap follows the same method but draws
//! from a seeded ChaCha8 stream, so its intervals are reproducible per seed
//! but not equal to the script's (which draws from numpy's unseeded generator).
//!
//! Where the script would crash or print NaN it gives a number instead: a
//! submission detecting nothing scores 0, and a bootstrap resample without any
//! rankable entry contributes a zero curve.
//!
//! - [`csv_input`]: reading the four files, with errors naming file and line.
//! - [`matching`]: the per-scan cap and which marks hit which findings.
//! - [`froc`]: the ROC/FROC curve, interpolation, CPM and bootstrap.
//! - [`report`]: [`score`], the serialisable [`Score`] and `CADAnalysis.txt`.

pub mod csv_input;
pub mod froc;
pub mod matching;
pub mod report;

#[cfg(test)]
mod tests;

pub use csv_input::{
    read_annotations, read_findings, read_marks, read_seriesuids, Finding, InputError, Mark,
};
pub use froc::{Bootstrap, FrocCurve, Interval, FP_RATES, MAX_BOOTSTRAP};
pub use matching::MAX_MARKS_PER_SCAN;
pub use report::{cad_analysis, default_scan_list, score, BootstrapSummary, Score, ScoreError};
