//! Reading the challenge's CSV files: nodule annotations, excluded findings,
//! the scan list, and a submission of CAD marks.
//!
//! The three point tables go through [`shared::luna::table`], the reader
//! `prepcache` uses too: columns found by header name, whitespace dropped,
//! every coordinate and value a finite `f64` (the official script would
//! accept `nan`/`inf` and then either crash (scikit-learn rejects non-finite
//! scores) or silently never match, so refusing them up front names the
//! culprit). Unlike `prepcache`, negative diameters are kept: LUNA's
//! `annotations_excluded.csv` uses -1 for "size unknown".

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared::luna::table::{self, TableError};

/// A reference finding: an annotated nodule (`annotations.csv`) or an
/// irrelevant finding (`annotations_excluded.csv`), both with the columns
/// `seriesuid,coordX,coordY,coordZ,diameter_mm`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The scan (CT series) the finding is in.
    pub seriesuid: String,
    /// World coordinates in mm, in the order x, y, z.
    pub center: [f64; 3],
    /// Negative means "size unknown"; matching then assumes 10 mm.
    pub diameter_mm: f64,
}

/// One CAD mark of a submission (`seriesuid,coordX,coordY,coordZ,probability`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The scan (CT series) the mark is in.
    pub seriesuid: String,
    /// World coordinates in mm, in the order x, y, z.
    pub center: [f64; 3],
    /// The detector's confidence; only its order matters.
    pub probability: f64,
}

/// Why an input file could not be read. Every error names the file; those
/// about one row or the header also name its 1-based line (the header is
/// line 1).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not a readable table: see [`table::Reason`].
    #[error(transparent)]
    Table(#[from] TableError),
    /// An annotations file with a header and no rows.
    #[error("{}: no nodules (only a header)", path.display())]
    NoNodules { path: PathBuf },
    /// A submission with a header and no rows: an empty or truncated file,
    /// not a result to score as CPM 0.
    #[error("{}: no marks (only a header); a submission needs at least one row", path.display())]
    NoMarks { path: PathBuf },
    /// A scan list without a single series UID.
    #[error("{}: no series UIDs", path.display())]
    NoScans { path: PathBuf },
}

const SERIESUID: &str = "seriesuid";
const DIAMETER: &str = "diameter_mm";
const PROBABILITY: &str = "probability";

/// Reads nodule annotations and fails with [`InputError::NoNodules`] when the
/// file has none: every score would divide by zero nodules.
pub fn read_annotations(path: &Path) -> Result<Vec<Finding>, InputError> {
    let findings = read_findings(path)?;
    if findings.is_empty() {
        return Err(InputError::NoNodules {
            path: path.to_path_buf(),
        });
    }
    Ok(findings)
}

/// Rows of a `seriesuid,coordX,coordY,coordZ,<value>` table (columns found
/// by name, in any order), each as `make(uid, centre, value)`: findings and
/// marks differ only in what the fifth column means.
fn read_points<T>(
    path: &Path,
    value: &'static str,
    make: impl Fn(String, [f64; 3], f64) -> T,
) -> Result<Vec<T>, InputError> {
    let points = table::read_points(path, value, |text| table::finite_number(value, text))?;
    Ok(points
        .into_iter()
        .map(|p| make(p.series_uid, p.center_xyz, p.value))
        .collect())
}

/// Reads findings with a `seriesuid,coordX,coordY,coordZ,diameter_mm` header.
/// A header without rows is valid (an empty excluded-findings list is normal).
pub fn read_findings(path: &Path) -> Result<Vec<Finding>, InputError> {
    read_points(path, DIAMETER, |seriesuid, center, diameter_mm| Finding {
        seriesuid,
        center,
        diameter_mm,
    })
}

/// Reads a submission with a `seriesuid,coordX,coordY,coordZ,probability`
/// header. A header without rows is refused ([`InputError::NoMarks`]): it
/// is far likelier a failed export than a system that marks nothing.
pub fn read_marks(path: &Path) -> Result<Vec<Mark>, InputError> {
    let marks = read_points(path, PROBABILITY, |seriesuid, center, probability| Mark {
        seriesuid,
        center,
        probability,
    })?;
    if marks.is_empty() {
        return Err(InputError::NoMarks {
            path: path.to_path_buf(),
        });
    }
    Ok(marks)
}

/// Reads the list of scans to score: the first field of every row, in order.
///
/// The challenge's `seriesuids.csv` has no header, so every row is a scan. A
/// first row reading exactly `seriesuid` is skipped all the same: no real
/// series UID looks like that, and counting it would add a phantom scan to the
/// false-positive divisor. Duplicates are kept, as the official script keeps them.
pub fn read_seriesuids(path: &Path) -> Result<Vec<String>, InputError> {
    let bytes = table::read_csv_bytes(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let mut uids = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| table::malformed(path, &bytes, e))?
    {
        let Some(uid) = record.get(0).filter(|uid| !uid.is_empty()) else {
            continue;
        };
        if uids.is_empty() && uid == SERIESUID {
            continue;
        }
        uids.push(uid.to_string());
    }
    if uids.is_empty() {
        return Err(InputError::NoScans {
            path: path.to_path_buf(),
        });
    }
    Ok(uids)
}
