//! LUNA16 CSVs and the book's candidate list.
//!
//! [`find_series`] finds the scans on disk, [`read_candidates_csv`] and
//! [`read_annotations_csv`] parse the two CSVs (with [`table`], the one
//! reader of LUNA16's point tables; [`read_annotations_with_malignancy_csv`]
//! reads chapter 14's malignancy labels), [`build_candidate_list`] (or
//! [`load_candidates`], which does all three) reproduces the book's
//! `getCandidateInfoList`, [`canonical_order`] is the order every tool
//! keeps, and [`split`](mod@split) its train/validation split.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::geometry::Xyz;

pub mod split;
pub mod table;

pub use split::{is_validation, split, split_indices, split_positions, validation_series, SplitBy};
pub use table::MAX_CSV_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum LunaError {
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        // Shown in the message, so not also returned as source(): the
        // "a: b" chain printers would repeat it.
        error: std::io::Error,
    },
    #[error("series {uid} is on disk twice: {first} and {second}")]
    DuplicateSeries {
        uid: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("validation stride must be at least 1, got 0")]
    ZeroStride,
}

/// One row of the book's candidate list: `(isNodule, diameter_mm, series_uid, center_xyz)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateInfo {
    pub is_nodule: bool,
    pub diameter_mm: f64,
    pub series_uid: String,
    pub center_xyz: Xyz,
    /// The line of the candidates CSV that named it (1-based, the header is
    /// line 1), so what a tool leaves out can be traced back to its row.
    /// Not part of the order, the split or any cache byte.
    #[serde(default)]
    pub line: u64,
}

/// A candidate row whose series is not on disk, left out of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingCandidate {
    pub series_uid: String,
    /// Line of the candidates CSV (1-based, the header is line 1).
    pub line: u64,
}

/// One row of `candidates.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateRow {
    pub series_uid: String,
    pub center_xyz: Xyz,
    pub is_nodule: bool,
}

/// One row of `annotations.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationRow {
    pub series_uid: String,
    pub center_xyz: Xyz,
    pub diameter_mm: f64,
}

/// One row of the book's `annotations_with_malignancy.csv` (chapter 14),
/// the columns its malignancy classifier uses.
#[derive(Debug, Clone, PartialEq)]
pub struct MalignancyRow {
    pub series_uid: String,
    pub center_xyz: Xyz,
    pub diameter_mm: f64,
    /// `mal_bool`.
    pub malignant: bool,
}

pub const CANDIDATES_HEADER: [&str; 5] = ["seriesuid", "coordX", "coordY", "coordZ", "class"];
pub const ANNOTATIONS_HEADER: [&str; 5] =
    ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"];
/// The header of the book's `annotations_with_malignancy.csv`:
/// annotations.csv's columns, then `mal_bool` (`True`/`False`),
/// `mal_details` (the LIDC readers' malignancy ratings 1–5 as a quoted
/// list, `"[4, 2, 4, 2]"`), the nodule's box in world millimetres
/// (`bboxLow*`, `bboxHigh*`) and `len_mal_details` (how many ratings).
pub const ANNOTATIONS_WITH_MALIGNANCY_HEADER: [&str; 14] = [
    "seriesuid",
    "coordX",
    "coordY",
    "coordZ",
    "diameter_mm",
    "mal_bool",
    "mal_details",
    "bboxLowX",
    "bboxLowY",
    "bboxLowZ",
    "bboxHighX",
    "bboxHighY",
    "bboxHighZ",
    "len_mal_details",
];

/// `uid → .mhd path` for every `<uid>.mhd` under `data_dir` (any depth) whose
/// path below `data_dir` passes through a folder named `subset*` — the book's
/// `subset*/*.mhd` glob, loosened so nested layouts work. If `data_dir`
/// itself is a `subset*` folder, all of its scans count. Symlinks are followed
/// because users often link subsets in from another disk.
///
/// A `<uid>.mhd` that is a dangling symbolic link is listed too: it names a
/// scan the user meant to have, and opening it then fails with a message
/// naming the link, so the build skips and reports that one scan (as any
/// unreadable scan) instead of stopping. Other dangling links are passed
/// over; the scans they would have held show up as not on disk.
pub fn find_series(data_dir: &Path) -> Result<BTreeMap<String, PathBuf>, LunaError> {
    let root_is_subset = data_dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("subset"));
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    let walker = walkdir::WalkDir::new(data_dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walker {
        let path = match entry {
            Ok(entry) if entry.file_type().is_file() => entry.into_path(),
            Ok(_) => continue,
            Err(e) => match dangling_link(&e) {
                Some(path) => path,
                None => {
                    return Err(LunaError::Io {
                        path: e.path().unwrap_or(data_dir).to_owned(),
                        error: e
                            .into_io_error()
                            .unwrap_or_else(|| std::io::Error::other("symlink loop")),
                    })
                }
            },
        };
        let Some(uid) = series_uid_of(data_dir, root_is_subset, &path) else {
            continue;
        };
        if let Some(first) = found.get(uid) {
            return Err(LunaError::DuplicateSeries {
                uid: uid.to_owned(),
                first: first.clone(),
                second: path.clone(),
            });
        }
        found.insert(uid.to_owned(), path.clone());
    }
    Ok(found)
}

/// The path of a walk error that is a symbolic link whose target is gone.
fn dangling_link(e: &walkdir::Error) -> Option<PathBuf> {
    let path = e.path()?;
    let missing = e
        .io_error()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    (missing && is_link).then(|| path.to_owned())
}

/// `<uid>` when `path` is a `<uid>.mhd` inside a `subset*` folder of
/// `data_dir` (or anywhere below it, when it is a `subset*` folder itself).
fn series_uid_of<'p>(data_dir: &Path, root_is_subset: bool, path: &'p Path) -> Option<&'p str> {
    if path.extension().and_then(|e| e.to_str()) != Some("mhd") {
        return None;
    }
    let uid = path.file_stem().and_then(|s| s.to_str())?;
    let in_subset = root_is_subset
        || path
            .strip_prefix(data_dir)
            .ok()
            .and_then(Path::parent)
            .is_some_and(|dir| {
                dir.components().any(|c| {
                    c.as_os_str()
                        .to_str()
                        .is_some_and(|n| n.starts_with("subset"))
                })
            });
    in_subset.then_some(uid)
}

/// The candidate list in the book's canonical (reverse-sorted) order, restricted
/// to series present on disk; `missing_series` counts the dropped series,
/// `missing` names each dropped row (in file order).
#[derive(Debug, Clone)]
pub struct CandidateList {
    pub candidates: Vec<CandidateInfo>,
    pub missing_series: usize,
    pub missing_candidates: usize,
    pub missing: Vec<MissingCandidate>,
    /// Rows left out because an earlier row is the same candidate, in file
    /// order.
    pub duplicates: Vec<DuplicateRow>,
}

/// A candidate row identical to an earlier one: same seriesuid, same
/// coordinates (as numbers: `1.50` and `1.5` agree) and same class. Kept
/// once, at its first line; a second copy would be stored twice and could
/// land in both the training and the validation split.
///
/// Rows that agree on seriesuid and coordinates but not on the class are
/// not duplicates; both are kept, as the book keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateRow {
    pub series_uid: String,
    /// This row's line (1-based, the header is line 1).
    pub line: u64,
    /// The line of the row it repeats, the one kept.
    pub first_line: u64,
}

/// How many duplicate lines a warning names before "…".
const DUPLICATES_SHOWN: usize = 5;

impl CandidateList {
    /// One line for the user when rows of `csv` were duplicates: the count
    /// and the first few lines with the line each repeats; None when there
    /// were none.
    pub fn duplicates_warning(&self, csv: &Path) -> Option<String> {
        let first = self.duplicates.first()?;
        let mut shown: Vec<String> = self
            .duplicates
            .iter()
            .take(DUPLICATES_SHOWN)
            .map(|d| format!("line {} (= line {})", d.line, d.first_line))
            .collect();
        if self.duplicates.len() > DUPLICATES_SHOWN {
            shown.push("…".to_owned());
        }
        Some(format!(
            "{}: {} duplicate candidate row(s) (same seriesuid, coordinates and class as an earlier row, e.g. series {}) stored once: {}",
            csv.display(),
            self.duplicates.len(),
            first.series_uid,
            shown.join(", ")
        ))
    }
}

/// `candidates` without the rows that repeat an earlier one (see
/// [`DuplicateRow`]), and those rows.
fn without_duplicates(
    candidates: &[(u64, CandidateRow)],
) -> (Vec<&(u64, CandidateRow)>, Vec<DuplicateRow>) {
    // `+ 0.0` turns -0.0 into 0.0: equal as numbers, as in the canonical order.
    let mut first_line: HashMap<(&str, [u64; 3], bool), u64> = HashMap::new();
    let mut kept = Vec::with_capacity(candidates.len());
    let mut duplicates = Vec::new();
    for row in candidates {
        let (line, c) = row;
        let key = (
            c.series_uid.as_str(),
            c.center_xyz.map(|v| (v + 0.0).to_bits()),
            c.is_nodule,
        );
        match first_line.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => duplicates.push(DuplicateRow {
                series_uid: c.series_uid.clone(),
                line: *line,
                first_line: *first.get(),
            }),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(*line);
                kept.push(row);
            }
        }
    }
    (kept, duplicates)
}

pub fn load_candidates<S>(
    candidates_csv: &Path,
    annotations_csv: &Path,
    present: &BTreeMap<String, S>,
) -> Result<CandidateList, LunaError> {
    let candidates = read_candidates_csv_lines(candidates_csv)?;
    let annotations = read_annotations_csv(annotations_csv)?;
    Ok(build_candidate_list(&candidates, &annotations, present))
}

/// The book's `getCandidateInfoList` on already parsed rows, each with its
/// CSV line (as [`read_candidates_csv_lines`] gives them).
///
/// Every candidate (class 0 and 1 alike) takes the diameter of the first
/// annotation of its series, in file order, whose centre is within
/// `diameter / 4` on each axis; otherwise 0.0. The list is then sorted in
/// reverse on `(is_nodule, diameter, uid, xyz)`; the sort is stable like
/// Python's. Unlike the book, a row identical to an earlier one is left out
/// and listed in [`CandidateList::duplicates`]: the book would store the
/// candidate twice, possibly once in each split.
/// `present`: the scans on disk by series UID (only the UIDs count).
pub fn build_candidate_list<S>(
    candidates: &[(u64, CandidateRow)],
    annotations: &[AnnotationRow],
    present: &BTreeMap<String, S>,
) -> CandidateList {
    let mut by_series: HashMap<&str, Vec<&AnnotationRow>> = HashMap::new();
    for a in annotations {
        by_series.entry(a.series_uid.as_str()).or_default().push(a);
    }
    let mut missing: HashSet<&str> = HashSet::new();
    let mut missing_rows = Vec::new();
    let (candidates, duplicates) = without_duplicates(candidates);
    let mut list = Vec::with_capacity(candidates.len());
    for (line, c) in candidates {
        if !present.contains_key(&c.series_uid) {
            missing.insert(c.series_uid.as_str());
            missing_rows.push(MissingCandidate {
                series_uid: c.series_uid.clone(),
                line: *line,
            });
            continue;
        }
        let diameter_mm = by_series
            .get(c.series_uid.as_str())
            .and_then(|anns| anns.iter().find(|a| matches_annotation(c.center_xyz, a)))
            .map_or(0.0, |a| a.diameter_mm);
        list.push(CandidateInfo {
            is_nodule: c.is_nodule,
            diameter_mm,
            series_uid: c.series_uid.clone(),
            center_xyz: c.center_xyz,
            line: *line,
        });
    }
    list.sort_by(|a, b| canonical_order(&a.order_key(), &b.order_key()));
    CandidateList {
        candidates: list,
        missing_series: missing.len(),
        missing_candidates: missing_rows.len(),
        missing: missing_rows,
        duplicates,
    }
}

/// The book rejects an annotation as soon as one axis has `|delta| > d/4`.
fn matches_annotation(center: Xyz, a: &AnnotationRow) -> bool {
    let limit = a.diameter_mm / 4.0;
    (0..3).all(|k| (center[k] - a.center_xyz[k]).abs() <= limit)
}

/// What decides a candidate's place in the canonical order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderKey<'a> {
    pub is_nodule: bool,
    pub diameter_mm: f64,
    pub series_uid: &'a str,
    pub center_xyz: Xyz,
}

impl CandidateInfo {
    pub fn order_key(&self) -> OrderKey<'_> {
        OrderKey {
            is_nodule: self.is_nodule,
            diameter_mm: self.diameter_mm,
            series_uid: &self.series_uid,
            center_xyz: self.center_xyz,
        }
    }
}

/// The canonical candidate order, the one rule every tool shares: the
/// book's list is the tuple `(isNodule, diameter_mm, series_uid,
/// center_xyz)` sorted in reverse, so positives come first, largest
/// nodules first. Cache indices, the validation split and every report
/// follow it. Floats compare like Python's (`-0.0 == 0.0`); NaN never gets
/// this far (the CSV reader rejects it).
pub fn canonical_order(a: &OrderKey, b: &OrderKey) -> Ordering {
    let float = |x: f64, y: f64| x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    b.is_nodule
        .cmp(&a.is_nodule)
        .then_with(|| float(b.diameter_mm, a.diameter_mm))
        .then_with(|| b.series_uid.cmp(a.series_uid))
        .then_with(|| float(b.center_xyz[0], a.center_xyz[0]))
        .then_with(|| float(b.center_xyz[1], a.center_xyz[1]))
        .then_with(|| float(b.center_xyz[2], a.center_xyz[2]))
}

/// Parse `candidates.csv` (`seriesuid,coordX,coordY,coordZ,class`).
pub fn read_candidates_csv(path: &Path) -> Result<Vec<CandidateRow>, LunaError> {
    Ok(read_candidates_csv_lines(path)?
        .into_iter()
        .map(|(_, row)| row)
        .collect())
}

/// [`read_candidates_csv`], each row with the line it starts on (1-based,
/// the header is line 1: the numbering an editor shows).
pub fn read_candidates_csv_lines(path: &Path) -> Result<Vec<(u64, CandidateRow)>, LunaError> {
    let column = CANDIDATES_HEADER[4];
    let points = table::read_points(path, column, |class| match class.parse::<i64>() {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        _ => Err(table::Reason::Invalid {
            column,
            message: format!("must be 0 or 1, got {class:?}"),
        }),
    })?;
    Ok(points
        .into_iter()
        .map(|p| {
            let row = CandidateRow {
                series_uid: p.series_uid,
                center_xyz: p.center_xyz,
                is_nodule: p.value,
            };
            (p.line, row)
        })
        .collect())
}

/// Parse `annotations.csv` (`seriesuid,coordX,coordY,coordZ,diameter_mm`).
/// A negative diameter is refused: the candidate list matches within a
/// quarter of it, and LUNA's "size unknown" -1 belongs only to
/// `annotations_excluded.csv`, which the list does not read.
pub fn read_annotations_csv(path: &Path) -> Result<Vec<AnnotationRow>, LunaError> {
    let points = table::read_points(path, ANNOTATIONS_HEADER[4], diameter)?;
    Ok(points
        .into_iter()
        .map(|p| AnnotationRow {
            series_uid: p.series_uid,
            center_xyz: p.center_xyz,
            diameter_mm: p.value,
        })
        .collect())
}

/// `diameter_mm` as read from an annotations file: finite, not negative.
fn diameter(text: &str) -> Result<f64, table::Reason> {
    let column = ANNOTATIONS_HEADER[4];
    let diameter_mm = table::finite_number(column, text)?;
    if diameter_mm < 0.0 {
        return Err(table::Reason::Invalid {
            column,
            message: format!("must not be negative, got {diameter_mm}"),
        });
    }
    Ok(diameter_mm)
}

/// Parse the book's `annotations_with_malignancy.csv` (chapter 14; see
/// [`ANNOTATIONS_WITH_MALIGNANCY_HEADER`]): each row's seriesuid, centre,
/// diameter (as [`read_annotations_csv`] takes it) and `mal_bool`.
///
/// Columns are found by name and the others (`mal_details`, the box,
/// `len_mal_details`) are not read, so their quoted commas are the csv
/// reader's business only. `mal_bool` is `True` or `False` as pandas
/// writes it; `true`/`false` and `1`/`0` are taken too. A bad value is one
/// line naming the file, the line and the column.
pub fn read_annotations_with_malignancy_csv(path: &Path) -> Result<Vec<MalignancyRow>, LunaError> {
    let columns = [
        ANNOTATIONS_WITH_MALIGNANCY_HEADER[4],
        ANNOTATIONS_WITH_MALIGNANCY_HEADER[5],
    ];
    let points = table::read_points_with(path, &columns, |fields| {
        Ok((diameter(fields[0])?, mal_bool(fields[1])?))
    })?;
    Ok(points
        .into_iter()
        .map(|p| MalignancyRow {
            series_uid: p.series_uid,
            center_xyz: p.center_xyz,
            diameter_mm: p.value.0,
            malignant: p.value.1,
        })
        .collect())
}

/// A `mal_bool` field: `True`/`False` (pandas), `true`/`false`, `1`/`0`.
fn mal_bool(text: &str) -> Result<bool, table::Reason> {
    match text {
        "True" | "true" | "1" => Ok(true),
        "False" | "false" | "0" => Ok(false),
        _ => Err(table::Reason::Invalid {
            column: ANNOTATIONS_WITH_MALIGNANCY_HEADER[5],
            message: format!("must be True or False (or true/false, 1/0), got {text:?}"),
        }),
    }
}
