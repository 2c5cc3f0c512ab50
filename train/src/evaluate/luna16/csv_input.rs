//! Reading the challenge's CSV files: nodule annotations, excluded findings,
//! the scan list, and a submission of CAD marks.
//!
//! Columns are found by header name, so their order does not matter and extra
//! columns are ignored; rows may come in any order. Whitespace around fields is
//! dropped. Every number must parse as a finite `f64`: the official script would
//! accept `nan`/`inf` and then either crash (scikit-learn rejects non-finite
//! scores) or silently never match, so refusing them up front names the culprit.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// Why an input file could not be read. Every variant names the file; those
/// about one row also name its 1-based line (the header is line 1).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Bad quoting, invalid UTF-8, a row with the wrong number of fields, or
    /// a read failure mid-file.
    #[error("{}: line {line}: malformed CSV: {source}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        source: csv::Error,
    },
    /// Not even a header line.
    #[error("{}: empty file (a header line is required)", path.display())]
    Empty { path: PathBuf },
    /// The header lacks a required column.
    #[error("{}: line 1: missing column `{column}` in the header", path.display())]
    MissingColumn { path: PathBuf, column: &'static str },
    /// A field that must be a number is not one, or is NaN or infinite.
    #[error("{}: line {line}: column `{column}`: `{value}` is not a finite number", path.display())]
    InvalidNumber {
        path: PathBuf,
        line: u64,
        column: &'static str,
        value: String,
    },
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
const COORD: [&str; 3] = ["coordX", "coordY", "coordZ"];
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
    let table = Table::open(path)?;
    let uid = table.column(SERIESUID)?;
    let coord = [
        table.column(COORD[0])?,
        table.column(COORD[1])?,
        table.column(COORD[2])?,
    ];
    let value_column = table.column(value)?;
    table.rows(|row| {
        let center = [
            row.number(coord[0], COORD[0])?,
            row.number(coord[1], COORD[1])?,
            row.number(coord[2], COORD[2])?,
        ];
        Ok(make(
            row.text(uid).to_string(),
            center,
            row.number(value_column, value)?,
        ))
    })
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
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(open(path)?);
    let mut uids = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(source) => return Err(csv_error(path, source)),
        }
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

fn open(path: &Path) -> Result<File, InputError> {
    File::open(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Wraps a csv error (bad quoting, a row with the wrong number of fields,
/// invalid UTF-8, or an I/O failure mid-file) with the file and line.
fn csv_error(path: &Path, source: csv::Error) -> InputError {
    let line = source.position().map_or(0, csv::Position::line);
    InputError::Csv {
        path: path.to_path_buf(),
        line,
        source,
    }
}

/// A CSV file with a header, whose columns are looked up by name.
struct Table {
    path: PathBuf,
    header: csv::StringRecord,
    reader: csv::Reader<File>,
}

impl Table {
    fn open(path: &Path) -> Result<Self, InputError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(open(path)?);
        let header = reader
            .headers()
            .map_err(|source| csv_error(path, source))?
            .clone();
        if header.iter().all(str::is_empty) {
            return Err(InputError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            reader,
        })
    }

    /// Index of the first column with this name, like Python's `list.index`.
    fn column(&self, name: &'static str) -> Result<usize, InputError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| InputError::MissingColumn {
                path: self.path.clone(),
                column: name,
            })
    }

    fn rows<T>(
        mut self,
        mut parse: impl FnMut(&Row<'_>) -> Result<T, InputError>,
    ) -> Result<Vec<T>, InputError> {
        let mut out = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match self.reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(source) => return Err(csv_error(&self.path, source)),
            }
            let line = record.position().map_or(0, csv::Position::line);
            out.push(parse(&Row {
                path: &self.path,
                line,
                record: &record,
            })?);
        }
        Ok(out)
    }
}

/// One data row; the csv reader has already checked it has as many fields as
/// the header, so every column index is in range.
struct Row<'a> {
    path: &'a Path,
    line: u64,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    fn text(&self, index: usize) -> &str {
        &self.record[index]
    }

    fn number(&self, index: usize, column: &'static str) -> Result<f64, InputError> {
        let text = self.text(index);
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value),
            _ => Err(InputError::InvalidNumber {
                path: self.path.to_path_buf(),
                line: self.line,
                column,
                value: text.to_string(),
            }),
        }
    }
}
