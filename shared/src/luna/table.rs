//! The one reader of LUNA16's point tables: `candidates.csv`,
//! `annotations.csv`, `annotations_excluded.csv`, a submission of CAD
//! marks and the book's `annotations_with_malignancy.csv`, each a CSV whose
//! header names `seriesuid,coordX,coordY,coordZ` and one value column
//! (`class`, `diameter_mm`, `probability`) or several
//! (`diameter_mm,mal_bool`, see [`read_points_with`]).
//!
//! Columns are found by name (the first of that name, like Python's
//! `list.index`), so their order does not matter and extra columns are
//! ignored. Whitespace around fields is dropped, a UTF-8 BOM and CRLF line
//! ends are fine. A row may be longer than the header but must reach every
//! column read. Coordinates must be finite numbers and the seriesuid must not
//! be empty; what the value column may hold is the caller's policy.
//!
//! The file is read whole, and only when it is a regular file of at most
//! [`MAX_CSV_BYTES`]. Lines are numbered as an editor numbers them (1-based,
//! the header is line 1, blank lines count).

use std::path::{Path, PathBuf};

use crate::geometry::Xyz;

/// The largest CSV read (bytes): 40× the organisers' largest list (~60 MB).
pub const MAX_CSV_BYTES: u64 = 2 << 30;

/// Why a table could not be read: the file, the line at fault when there is
/// one (1-based, the header is line 1), and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{reason}", .path.display(), LinePrefix(*.line))]
pub struct TableError {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub reason: Reason,
}

/// `line N: ` when there is a line, else nothing.
struct LinePrefix(Option<u64>);

impl std::fmt::Display for LinePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(line) => write!(f, "line {line}: "),
            None => Ok(()),
        }
    }
}

/// What is wrong, without the file and line [`TableError`] adds. The
/// errors inside are shown in the message, so not also returned as
/// `source()`: the "a: b" chain printers would repeat them.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// `what`: [`metaimage::describe_file_type`]'s words.
    #[error("is {0}, not a regular file; refusing to read it")]
    NotRegularFile(&'static str),
    #[error("{bytes} bytes, over the {} GiB a LUNA16 CSV may have", MAX_CSV_BYTES >> 30)]
    TooLarge { bytes: u64 },
    /// Bad quoting or invalid UTF-8.
    #[error("malformed CSV: {0}")]
    Malformed(csv::Error),
    #[error("empty file (a header line is required)")]
    Empty,
    /// `expected`: the columns read, comma-separated.
    #[error("missing column `{column}` in the header (expected {expected})")]
    MissingColumn {
        column: &'static str,
        expected: String,
    },
    #[error(
        "missing field {column} (the header has {header_fields} fields, this row {row_fields})"
    )]
    MissingField {
        column: &'static str,
        header_fields: usize,
        row_fields: usize,
    },
    #[error("empty seriesuid")]
    EmptySeriesUid,
    /// Not a number, or NaN or infinite: the official script would accept
    /// `nan`/`inf` and then crash or silently never match.
    #[error("{}", number_message(.column, .value))]
    InvalidNumber { column: &'static str, value: String },
    /// A value the caller's policy refuses (a class other than 0 or 1, a
    /// negative diameter), as `<column> <message>`.
    #[error("{column} {message}")]
    Invalid {
        column: &'static str,
        message: String,
    },
}

fn number_message(column: &str, value: &str) -> String {
    if value.parse::<f64>().is_ok() {
        format!("{column} must be finite, got {value:?}")
    } else {
        format!("{column} is not a number: {value:?}")
    }
}

/// One data row of a point table.
#[derive(Debug, Clone, PartialEq)]
pub struct Point<T> {
    /// The line the row starts on (1-based, the header is line 1).
    pub line: u64,
    pub series_uid: String,
    pub center_xyz: Xyz,
    /// The value column, as the caller's parser made it.
    pub value: T,
}

/// `text` as a finite number, or [`Reason::InvalidNumber`] naming `column`.
pub fn finite_number(column: &'static str, text: &str) -> Result<f64, Reason> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Reason::InvalidNumber {
            column,
            value: text.to_owned(),
        }),
    }
}

/// Every row of the table at `path`, in file order, its value column
/// (named `value_column`) made by `parse_value`.
pub fn read_points<T>(
    path: &Path,
    value_column: &'static str,
    parse_value: impl Fn(&str) -> Result<T, Reason>,
) -> Result<Vec<Point<T>>, TableError> {
    read_points_with(path, &[value_column], |fields| parse_value(fields[0]))
}

/// [`read_points`] with several value columns: `parse_values` gets the
/// row's fields of `value_columns`, in that order, and names the column in
/// any [`Reason`] it returns.
pub fn read_points_with<T>(
    path: &Path,
    value_columns: &[&'static str],
    parse_values: impl Fn(&[&str]) -> Result<T, Reason>,
) -> Result<Vec<Point<T>>, TableError> {
    let bytes = read_csv_bytes(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let at = |line, reason| TableError {
        path: path.to_owned(),
        line,
        reason,
    };
    let header = reader
        .headers()
        .map_err(|e| malformed(path, &bytes, e))?
        .clone();
    if header.iter().all(str::is_empty) {
        return Err(at(None, Reason::Empty));
    }
    let columns = Columns::find(&header, value_columns).map_err(|r| at(Some(1), r))?;
    let mut lines = Lines::new(&bytes);
    let mut record = csv::StringRecord::new();
    let mut points = Vec::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| malformed(path, &bytes, e))?
    {
        let line = record.position().map_or(0, |p| lines.line_of(p.byte()));
        let point = columns
            .point(&record, line, &parse_values)
            .map_err(|r| at(Some(line), r))?;
        points.push(point);
    }
    Ok(points)
}

/// A csv reader's error on `bytes`, with the line (as `Lines` counts
/// it) of the record it is about.
pub fn malformed(path: &Path, bytes: &[u8], error: csv::Error) -> TableError {
    let line = error
        .position()
        .map(|p| Lines::new(bytes).line_of(p.byte()));
    TableError {
        path: path.to_owned(),
        line,
        reason: Reason::Malformed(error),
    }
}

/// The point columns, before the value columns.
const POINT_COLUMNS: [&str; 4] = ["seriesuid", "coordX", "coordY", "coordZ"];

/// Where the columns read (the point's four, then the value columns) are
/// in the header.
struct Columns {
    names: Vec<&'static str>,
    index: Vec<usize>,
    header_fields: usize,
}

impl Columns {
    fn find(header: &csv::StringRecord, value_columns: &[&'static str]) -> Result<Self, Reason> {
        let names: Vec<&'static str> = POINT_COLUMNS.iter().chain(value_columns).copied().collect();
        let mut index = Vec::with_capacity(names.len());
        for &column in &names {
            index.push(header.iter().position(|h| h == column).ok_or_else(|| {
                Reason::MissingColumn {
                    column,
                    expected: names.join(","),
                }
            })?);
        }
        Ok(Columns {
            names,
            index,
            header_fields: header.len(),
        })
    }

    fn field<'r>(&self, record: &'r csv::StringRecord, k: usize) -> Result<&'r str, Reason> {
        record.get(self.index[k]).ok_or(Reason::MissingField {
            column: self.names[k],
            header_fields: self.header_fields,
            row_fields: record.len(),
        })
    }

    /// Checked in column order (seriesuid, x, y, z, values), so the first
    /// fault of a row is the one reported (within the values, the parser's
    /// order).
    fn point<T>(
        &self,
        record: &csv::StringRecord,
        line: u64,
        parse_values: impl Fn(&[&str]) -> Result<T, Reason>,
    ) -> Result<Point<T>, Reason> {
        let series_uid = self.field(record, 0)?;
        if series_uid.is_empty() {
            return Err(Reason::EmptySeriesUid);
        }
        let mut center_xyz = [0.0; 3];
        for (k, v) in center_xyz.iter_mut().enumerate() {
            *v = finite_number(self.names[k + 1], self.field(record, k + 1)?)?;
        }
        // Every value field must be there before any is parsed.
        let values = (POINT_COLUMNS.len()..self.names.len())
            .map(|k| self.field(record, k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Point {
            line,
            series_uid: series_uid.to_owned(),
            center_xyz,
            value: parse_values(&values)?,
        })
    }
}

/// The whole file, read only when it is a regular file of at most
/// [`MAX_CSV_BYTES`]: a FIFO would block the read, a sparse terabyte file
/// would be allocated whole. Read whole so that each row's line can be
/// counted in the bytes, see `Lines`.
pub fn read_csv_bytes(path: &Path) -> Result<Vec<u8>, TableError> {
    use std::io::Read;
    let refuse = |reason| TableError {
        path: path.to_owned(),
        line: None,
        reason,
    };
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(|e| refuse(Reason::Io(e)))?;
    if !meta.is_file() {
        return Err(refuse(Reason::NotRegularFile(
            metaimage::describe_file_type(&meta),
        )));
    }
    if meta.len() > MAX_CSV_BYTES {
        return Err(refuse(Reason::TooLarge { bytes: meta.len() }));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CSV_BYTES).read_to_end(&mut bytes))
        .map_err(|e| refuse(Reason::Io(e)))?;
    Ok(bytes)
}

/// The line (1-based, as an editor numbers them) each record starts on,
/// counted in the file's bytes. The csv reader's own position is where it
/// began reading a record: before the blank lines it skipped on the way,
/// and before the LF of a CRLF that ended the previous record.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Bytes before `at` hold `line - 1` line breaks.
    at: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lines {
            bytes,
            at: 0,
            line: 1,
        }
    }

    /// `from`: the reader's position of a record; positions only grow.
    fn line_of(&mut self, from: u64) -> u64 {
        let mut start = (from as usize).clamp(self.at, self.bytes.len());
        while matches!(self.bytes.get(start), Some(b'\n' | b'\r')) {
            start += 1;
        }
        for k in self.at..start {
            // LF ends a line, and so does a lone CR; in CRLF the LF counts.
            let b = self.bytes[k];
            if b == b'\n' || (b == b'\r' && self.bytes.get(k + 1) != Some(&b'\n')) {
                self.line += 1;
            }
        }
        self.at = start;
        self.line
    }
}
