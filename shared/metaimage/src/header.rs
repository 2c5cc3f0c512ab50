//! MetaIO header text → [`Header`]. Semantics follow ITK's MetaIO reader,
//! which is what SimpleITK uses: `key = value` (or `key: value`) lines with
//! case-sensitive keys, unknown keys kept, a repeated key overriding, and the
//! `ElementDataFile` line ending the header.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::element::ElementType;
use super::MetaImageError;

/// MetaIO allows at most 10 dimensions.
const MAX_NDIMS: usize = 10;
/// Header text beyond this is not a MetaImage header but a binary file
/// without an `ElementDataFile` line; stop before reading all of it.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Where the voxel bytes live (`ElementDataFile`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DataFile {
    /// Right after the header, in the same file (`.mha`).
    Local,
    /// One file, relative to the header's folder unless absolute. When it is
    /// missing but `<name>.gz` exists, that gzip copy is read instead, as ITK
    /// does.
    File(String),
    /// `LIST [nD]`: one file per `file_dims`-dimensional block, names on the
    /// lines after the header.
    List {
        /// Dimensions per file (`LIST 2D` → 2; NDims − 1 when not given,
        /// zero or too large, as ITK does).
        file_dims: usize,
        /// The file names in order, one per block, relative to the header's
        /// folder unless absolute.
        names: Vec<String>,
    },
    /// printf pattern with one integer conversion: `name%03d.raw min max step`,
    /// one file per slice (last axis).
    Pattern {
        /// The name with its `%d`-style conversion (flags: `0` and a width).
        pattern: String,
        /// Number of the first slice's file (default 1).
        min: i64,
        /// Largest number the range may reach (default: one file per slice).
        max: i64,
        /// Increment between consecutive slices' numbers (default 1; with
        /// only min and max given, `(max − min) / slices`, at least 1).
        step: i64,
    },
}

/// `HeaderSize`: bytes to skip at the start of each data file.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum HeaderSize {
    /// Not given (0): data starts at the file start (LOCAL: after the header).
    Default,
    /// Data starts this many bytes into the file (LOCAL too: ITK seeks from
    /// the beginning of the file).
    Skip(u64),
    /// -1: the data is the tail of the file.
    Tail,
}

/// A parsed MetaImage header.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Header {
    /// The header file this was read from.
    pub path: PathBuf,
    /// Every `key = value` line in file order, as written (for `inspect`).
    pub entries: Vec<(String, String)>,
    /// DimSize, x fastest.
    pub dims: Vec<usize>,
    /// `ElementType`.
    pub element_type: ElementType,
    /// `ElementNumberOfChannels` (1 when absent); channels are interleaved.
    pub channels: usize,
    /// `ElementSpacing`, or `ElementSize` when spacing is absent; 1 per axis
    /// by default.
    pub spacing: Vec<f64>,
    /// `Origin`, `Offset` or `Position` (synonyms); 0 per axis by default.
    pub origin: Vec<f64>,
    /// Row-major TransformMatrix values as written (NDims × NDims); ITK's
    /// direction is its transpose, see [`Header::direction`].
    /// `Rotation` and `Orientation` are synonyms; identity by default.
    pub transform_matrix: Vec<f64>,
    /// `BinaryDataByteOrderMSB` (or `ElementByteOrderMSB`) is true: the data
    /// is big-endian. Little-endian by default.
    pub big_endian: bool,
    /// `CompressedData` is true: each data file is a zlib (or gzip) stream.
    /// (A `.gz` copy read in place of a missing data file is inflated even
    /// when this is false.)
    pub compressed: bool,
    /// `CompressedDataSize`, when given and non-zero.
    pub compressed_size: Option<u64>,
    /// `HeaderSize`: where the voxels start in each data file.
    pub header_size: HeaderSize,
    /// `ElementDataFile`: where the voxels are.
    pub data_file: DataFile,
    /// Byte offset right after the `ElementDataFile` line (LOCAL data start).
    pub data_offset: u64,
}

impl Header {
    /// Number of dimensions (`NDims`, the length of `dims`).
    pub fn ndims(&self) -> usize {
        self.dims.len()
    }

    /// ITK direction matrix, row-major N×N: the transpose of
    /// `TransformMatrix`, because MetaIO writes axis k's world direction as
    /// row k while ITK's direction matrix holds it as column k.
    pub fn direction(&self) -> Vec<f64> {
        let n = self.ndims();
        let mut d = vec![0.0; n * n];
        for r in 0..n {
            for c in 0..n {
                d[r * n + c] = self.transform_matrix[c * n + r];
            }
        }
        d
    }

    /// Number of pixels (without channels); None on overflow.
    pub fn pixel_count(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Bytes of uncompressed voxel data: prod(DimSize) · channels · element size.
    pub fn data_len(&self) -> Result<usize, MetaImageError> {
        self.pixel_count()
            .and_then(|n| n.checked_mul(self.channels))
            .and_then(|n| n.checked_mul(self.element_type.size()))
            .ok_or_else(|| {
                self.invalid(format!(
                    "DimSize {:?} × {} channels overflows memory sizes",
                    self.dims, self.channels
                ))
            })
    }

    /// The value of the last `key` line (MetaIO: a repeated key overrides).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn invalid(&self, reason: impl Into<String>) -> MetaImageError {
        MetaImageError::invalid(&self.path, reason)
    }
}

/// Read and parse the header of a `.mhd` or `.mha` file (not the voxels).
///
/// Checks the header on its own (required keys, value counts, numbers,
/// supported element type, a geometry that maps points: finite values,
/// positive spacings, an invertible TransformMatrix); whether the data files exist and have the right
/// size is checked when the voxels are read. Reading stops at the
/// `ElementDataFile` line (after the file names of a `LIST`), so for `.mha`
/// files the voxels are not touched. Only a regular file is read: a FIFO,
/// device or directory is refused without blocking, a dangling symbolic link
/// is named as one, and a header past 16 MiB is refused naming that cap.
pub fn read_header(path: impl AsRef<Path>) -> Result<Header, MetaImageError> {
    let path = path.as_ref();
    let (file, _) = super::files::open_regular(path, path)?;
    let mut reader = BufReader::new(file).take(MAX_HEADER_BYTES);
    let mut entries = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| MetaImageError::io(path, e))?;
        // A line cut short by the cap would otherwise be reported as a line
        // without a separator; the cap is what the user needs to hear about.
        let capped = offset + n as u64 >= MAX_HEADER_BYTES && !buf.ends_with(b"\n");
        if n == 0 || capped {
            return Err(MetaImageError::invalid(
                path,
                header_end_error(offset + n as u64),
            ));
        }
        offset += n as u64;
        line_no += 1;
        let line = header_line(path, &buf, line_no)?;
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = split_key_value(line).ok_or_else(|| {
            MetaImageError::invalid(
                path,
                format!(
                    "header line {line_no} has no '=' or ':' separator: {:?}",
                    truncate(line)
                ),
            )
        })?;
        let is_last = key == "ElementDataFile";
        entries.push((key.to_owned(), value.to_owned()));
        if is_last {
            break;
        }
    }
    let fields = Fields {
        path,
        entries: &entries,
    };
    let parsed = fields.parse()?;
    let data_file = match parse_data_file(path, fields.required("ElementDataFile")?, &parsed.dims)?
    {
        PendingDataFile::Ready(d) => d,
        PendingDataFile::List { file_dims, count } => {
            let names = read_list_names(path, &mut reader, count, line_no)?;
            DataFile::List { file_dims, names }
        }
    };
    Ok(Header {
        path: path.to_owned(),
        entries: entries.clone(),
        dims: parsed.dims,
        element_type: parsed.element_type,
        channels: parsed.channels,
        spacing: parsed.spacing,
        origin: parsed.origin,
        transform_matrix: parsed.transform_matrix,
        big_endian: parsed.big_endian,
        compressed: parsed.compressed,
        compressed_size: parsed.compressed_size,
        header_size: parsed.header_size,
        data_file,
        data_offset: offset,
    })
}

fn header_end_error(read: u64) -> String {
    if read >= MAX_HEADER_BYTES {
        format!(
            "no ElementDataFile line in the first {} MiB (the header size cap); not a MetaImage header",
            MAX_HEADER_BYTES >> 20
        )
    } else {
        "header ends without an ElementDataFile line".to_owned()
    }
}

fn header_line<'a>(path: &Path, raw: &'a [u8], line_no: usize) -> Result<&'a str, MetaImageError> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        MetaImageError::invalid(
            path,
            format!("header line {line_no} is not UTF-8 text; not a MetaImage header?"),
        )
    })?;
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(MetaImageError::invalid(
            path,
            format!(
                "header line {line_no} contains binary control characters; not a MetaImage header?"
            ),
        ));
    }
    Ok(text.trim_end_matches(['\n', '\r']))
}

/// MetaIO splits at the first `=` or `:`; keys stay case-sensitive.
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let at = line.find(['=', ':'])?;
    let key = line[..at].trim();
    if key.is_empty() {
        return None;
    }
    Some((key, line[at + 1..].trim()))
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

struct Parsed {
    dims: Vec<usize>,
    element_type: ElementType,
    channels: usize,
    spacing: Vec<f64>,
    origin: Vec<f64>,
    transform_matrix: Vec<f64>,
    big_endian: bool,
    compressed: bool,
    compressed_size: Option<u64>,
    header_size: HeaderSize,
}

/// Spacing, origin and row-major TransformMatrix, as [`Header`] holds them.
type GeometryValues = (Vec<f64>, Vec<f64>, Vec<f64>);

struct Fields<'a> {
    path: &'a Path,
    entries: &'a [(String, String)],
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first of `keys` present, in priority order.
    fn first_of(&self, keys: &[&'static str]) -> Option<(&'static str, &str)> {
        keys.iter().find_map(|k| self.get(k).map(|v| (*k, v)))
    }

    fn required(&self, key: &str) -> Result<&str, MetaImageError> {
        self.get(key)
            .ok_or_else(|| self.invalid(format!("header has no {key}")))
    }

    fn invalid(&self, reason: String) -> MetaImageError {
        MetaImageError::invalid(self.path, reason)
    }

    /// The checks run in a fixed order, so that a header with several faults
    /// always reports the same one.
    fn parse(&self) -> Result<Parsed, MetaImageError> {
        let dims = self.dims()?;
        let (element_type, channels) = self.element()?;
        let (spacing, origin, transform_matrix) = self.geometry(dims.len())?;
        let big_endian = match self.first_of(&["BinaryDataByteOrderMSB", "ElementByteOrderMSB"]) {
            Some((key, v)) => self.boolean(key, v)?,
            None => false,
        };
        self.require_binary()?;
        let (compressed, compressed_size) = self.compression()?;
        let header_size = self.header_size()?;
        Ok(Parsed {
            dims,
            element_type,
            channels,
            spacing,
            origin,
            transform_matrix,
            big_endian,
            compressed,
            compressed_size,
            header_size,
        })
    }

    /// `DimSize`, checked against `NDims` when that is given.
    fn dims(&self) -> Result<Vec<usize>, MetaImageError> {
        let dims_value = self.required("DimSize")?;
        let dims: Vec<usize> = self.numbers("DimSize", dims_value)?;
        let ndims = match self.get("NDims") {
            Some(v) => self.number::<usize>("NDims", v)?,
            None => dims.len(),
        };
        if !(1..=MAX_NDIMS).contains(&ndims) {
            return Err(self.invalid(format!(
                "NDims = {ndims}: must be between 1 and {MAX_NDIMS}"
            )));
        }
        self.check_len("DimSize", &dims, ndims)?;
        if dims.contains(&0) {
            return Err(self.invalid(format!("DimSize {dims:?} has a zero extent")));
        }
        Ok(dims)
    }

    /// `ElementType` and `ElementNumberOfChannels`.
    fn element(&self) -> Result<(ElementType, usize), MetaImageError> {
        let type_name = self.required("ElementType")?;
        let element_type = ElementType::from_name(type_name).ok_or_else(|| {
            self.invalid(format!(
                "unknown or unsupported ElementType {:?}",
                truncate(type_name)
            ))
        })?;
        let channels = match self.get("ElementNumberOfChannels") {
            Some(v) => self.number::<usize>("ElementNumberOfChannels", v)?,
            None => 1,
        };
        if channels == 0 {
            return Err(self.invalid("ElementNumberOfChannels = 0".into()));
        }
        Ok((element_type, channels))
    }

    fn require_binary(&self) -> Result<(), MetaImageError> {
        let binary = self
            .get("BinaryData")
            .map(|v| self.boolean("BinaryData", v))
            .transpose()?
            .unwrap_or(true);
        if !binary {
            return Err(
                self.invalid("BinaryData = False (ASCII voxel text) is not supported".into())
            );
        }
        Ok(())
    }

    /// `CompressedData` and `CompressedDataSize` (a zero size counts as absent).
    fn compression(&self) -> Result<(bool, Option<u64>), MetaImageError> {
        let compressed = self
            .get("CompressedData")
            .map(|v| self.boolean("CompressedData", v))
            .transpose()?
            .unwrap_or(false);
        let compressed_size = match self.get("CompressedDataSize") {
            Some(v) => Some(self.number::<u64>("CompressedDataSize", v)?).filter(|&n| n > 0),
            None => None,
        };
        Ok((compressed, compressed_size))
    }

    fn header_size(&self) -> Result<HeaderSize, MetaImageError> {
        Ok(match self.get("HeaderSize") {
            None => HeaderSize::Default,
            Some(v) => match self.number::<i64>("HeaderSize", v)? {
                0 => HeaderSize::Default,
                -1 => HeaderSize::Tail,
                n if n > 0 => HeaderSize::Skip(n as u64),
                n => {
                    return Err(self.invalid(format!(
                        "HeaderSize = {n}: only -1 or a byte count is allowed"
                    )))
                }
            },
        })
    }

    /// Spacing, origin and TransformMatrix, checked so that world and voxel
    /// coordinates map both ways: every value finite, every spacing
    /// positive, the matrix invertible. A NaN origin or a zero spacing would
    /// otherwise put every world point in one voxel, or in none.
    fn geometry(&self, ndims: usize) -> Result<GeometryValues, MetaImageError> {
        // ITK: ElementSpacing wins; ElementSize stands in when spacing is absent.
        let (spacing_key, spacing) = match self.first_of(&["ElementSpacing", "ElementSize"]) {
            Some((key, v)) => (key, self.vector(key, v, ndims)?),
            None => ("ElementSpacing", vec![1.0; ndims]),
        };
        // ITK assigns Position, then Offset, then Origin: the later one wins.
        let (origin_key, origin) = match self.first_of(&["Origin", "Offset", "Position"]) {
            Some((key, v)) => (key, self.vector(key, v, ndims)?),
            None => ("Offset", vec![0.0; ndims]),
        };
        // Same for Orientation, Rotation, TransformMatrix.
        let (matrix_key, matrix) =
            match self.first_of(&["TransformMatrix", "Rotation", "Orientation"]) {
                Some((key, v)) => (key, self.vector(key, v, ndims * ndims)?),
                None => (
                    "TransformMatrix",
                    (0..ndims * ndims)
                        .map(|k| if k % (ndims + 1) == 0 { 1.0 } else { 0.0 })
                        .collect(),
                ),
            };
        for (key, values) in [
            (spacing_key, &spacing),
            (origin_key, &origin),
            (matrix_key, &matrix),
        ] {
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(self.invalid(format!(
                    "{key} {values:?} holds {bad}: geometry values must be finite"
                )));
            }
        }
        if spacing.iter().any(|&s| s <= 0.0) {
            return Err(self.invalid(format!(
                "{spacing_key} {spacing:?}: every spacing must be positive"
            )));
        }
        let det = determinant(&matrix, ndims);
        if !det.is_finite() || det.abs() < SINGULAR_DETERMINANT {
            return Err(self.invalid(format!(
                "{matrix_key} {matrix:?} is singular (determinant {det:e}): world points cannot be mapped to voxels"
            )));
        }
        Ok((spacing, origin, matrix))
    }

    fn number<T: std::str::FromStr>(&self, key: &str, token: &str) -> Result<T, MetaImageError> {
        token
            .trim()
            .parse()
            .map_err(|_| self.invalid(format!("{key}: bad number {:?}", truncate(token))))
    }

    fn numbers<T: std::str::FromStr>(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<T>, MetaImageError> {
        value
            .split_whitespace()
            .map(|t| self.number(key, t))
            .collect()
    }

    fn vector(&self, key: &str, value: &str, len: usize) -> Result<Vec<f64>, MetaImageError> {
        let v: Vec<f64> = self.numbers(key, value)?;
        self.check_len(key, &v, len)?;
        Ok(v)
    }

    fn check_len<T>(&self, key: &str, v: &[T], len: usize) -> Result<(), MetaImageError> {
        if v.len() != len {
            return Err(self.invalid(format!("{key} has {} values, expected {len}", v.len())));
        }
        Ok(())
    }

    /// MetaIO looks only at the first character: T, t or 1 mean true.
    fn boolean(&self, key: &str, value: &str) -> Result<bool, MetaImageError> {
        match value.trim().chars().next() {
            Some('T' | 't' | '1') => Ok(true),
            Some('F' | 'f' | '0') => Ok(false),
            _ => Err(self.invalid(format!(
                "{key}: expected True or False, got {:?}",
                truncate(value)
            ))),
        }
    }
}

/// The threshold below which [`crate::geometry::Geometry`] refuses to invert
/// a direction matrix; the header check uses the same, so a header that
/// reads is a header whose points map.
const SINGULAR_DETERMINANT: f64 = 1e-12;

/// Determinant of the row-major `n`×`n` matrix `m`, by Gaussian elimination
/// with partial pivoting (n ≤ 10, so cost is no concern).
fn determinant(m: &[f64], n: usize) -> f64 {
    let mut a = m.to_vec();
    let mut det = 1.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x * n + col].abs().total_cmp(&a[y * n + col].abs()))
            .unwrap_or(col);
        if a[pivot * n + col] == 0.0 {
            return 0.0;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
            det = -det;
        }
        let p = a[col * n + col];
        det *= p;
        for row in col + 1..n {
            let f = a[row * n + col] / p;
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
        }
    }
    det
}

enum PendingDataFile {
    Ready(DataFile),
    List { file_dims: usize, count: usize },
}

fn parse_data_file(
    path: &Path,
    value: &str,
    dims: &[usize],
) -> Result<PendingDataFile, MetaImageError> {
    let invalid = |reason: String| MetaImageError::invalid(path, reason);
    let ndims = dims.len();
    if value.is_empty() {
        return Err(invalid("ElementDataFile is empty".into()));
    }
    if matches!(value, "LOCAL" | "Local" | "local") {
        return Ok(PendingDataFile::Ready(DataFile::Local));
    }
    if let Some(rest) = value.strip_prefix("LIST") {
        // `LIST 2D`: ITK reads the leading number; 0 or too large → NDims-1.
        let word = rest.split_whitespace().next().unwrap_or("");
        let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
        let mut file_dims = digits.parse::<usize>().unwrap_or(0);
        if file_dims == 0 || file_dims > ndims {
            file_dims = ndims.saturating_sub(1);
        }
        let count = dims[file_dims..]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        let count = count
            .ok_or_else(|| invalid(format!("LIST: DimSize {dims:?} overflows the file count")))?;
        return Ok(PendingDataFile::List { file_dims, count });
    }
    if value.contains('%') {
        return parse_pattern(value, dims[ndims - 1])
            .map(PendingDataFile::Ready)
            .map_err(invalid);
    }
    Ok(PendingDataFile::Ready(DataFile::File(value.to_owned())))
}

/// `name%03d.raw [min [max [step]]]`; with more words the name had spaces and
/// the last three are min, max, step (ITK's rule).
fn parse_pattern(value: &str, slices: usize) -> Result<DataFile, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let num = |w: &str| {
        w.parse::<i64>()
            .map_err(|_| format!("ElementDataFile pattern: bad number {w:?}"))
    };
    let slices = i64::try_from(slices).map_err(|_| "too many slices".to_owned())?;
    let (pattern, min, max, step) = match words.len() {
        1 => (words[0].to_owned(), 1, slices, 1),
        2 => {
            let min = num(words[1])?;
            (words[0].to_owned(), min, min.saturating_add(slices - 1), 1)
        }
        3 => {
            let (min, max) = (num(words[1])?, num(words[2])?);
            (
                words[0].to_owned(),
                min,
                max,
                (max.saturating_sub(min) / slices).max(1),
            )
        }
        4 => (
            words[0].to_owned(),
            num(words[1])?,
            num(words[2])?,
            num(words[3])?,
        ),
        n => (
            words[..n - 3].join(" "),
            num(words[n - 3])?,
            num(words[n - 2])?,
            num(words[n - 1])?,
        ),
    };
    if step <= 0 || max < min {
        return Err(format!(
            "ElementDataFile pattern: range {min}..={max} step {step} is empty or not increasing"
        ));
    }
    super::pattern::check(&pattern)?;
    Ok(DataFile::Pattern {
        pattern,
        min,
        max,
        step,
    })
}

fn read_list_names(
    path: &Path,
    reader: &mut impl BufRead,
    count: usize,
    mut line_no: usize,
) -> Result<Vec<String>, MetaImageError> {
    let mut names = Vec::new();
    let mut buf = Vec::new();
    while names.len() < count {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| MetaImageError::io(path, e))?;
        if n == 0 {
            return Err(MetaImageError::invalid(
                path,
                format!(
                    "ElementDataFile LIST names {} files, DimSize needs {count}",
                    names.len()
                ),
            ));
        }
        line_no += 1;
        let line = header_line(path, &buf, line_no)?.trim();
        if !line.is_empty() {
            names.push(line.to_owned());
        }
    }
    Ok(names)
}
