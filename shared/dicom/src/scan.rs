//! Finding the series in a folder: every DICOM file at any depth, grouped
//! by SeriesInstanceUID, with non-image objects left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::DicomError;
use crate::file;
use crate::header::{classify, Kind};

/// The image files of one series, as found on disk (not yet in slice
/// order: [`crate::read_series`] orders them by position).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SeriesFiles {
    /// SeriesInstanceUID shared by the files.
    pub series_uid: String,
    /// The files, sorted by path (those that cannot be read included).
    pub files: Vec<PathBuf>,
    /// Why each file of the series that cannot be read (truncated,
    /// malformed) cannot, one line each naming the file: such a series is
    /// refused by [`crate::read_series`] rather than read without them.
    pub unreadable: Vec<String>,
}

impl SeriesFiles {
    /// A series from its UID and files, e.g. from a list kept elsewhere.
    pub fn new(series_uid: impl Into<String>, files: Vec<PathBuf>) -> Self {
        SeriesFiles {
            series_uid: series_uid.into(),
            files,
            unreadable: Vec::new(),
        }
    }
}

/// Every image series under `dir`, at any depth, sorted by UID.
///
/// A file counts when it has the `DICM` marker at offset 128, whatever its
/// name or extension. DICOMDIRs, objects without PixelData and non-image
/// SOP classes (segmentations, RT structures, reports, …) are skipped, as
/// are files without the marker (LIDC's XML annotations, for example). A
/// DICOM file that cannot be parsed belongs to the series its intact part
/// names (listed in [`SeriesFiles::unreadable`], so the series is refused
/// when read, and the other series are not held up); one broken before its
/// SeriesInstanceUID is an error naming it, since the series it would
/// leave a slice short of cannot be told.
pub fn find_series(dir: impl AsRef<Path>) -> Result<Vec<SeriesFiles>, DicomError> {
    let dir = dir.as_ref();
    let mut paths = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let entry = match entry {
            Ok(entry) => entry,
            // A link to nothing holds no slice; were it one, the series
            // it belonged to is refused for the gap, naming it.
            Err(e) if dangling_link(&e) => continue,
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_owned();
                return Err(DicomError::io(&path, e.into()));
            }
        };
        if entry.file_type().is_file() {
            paths.push(entry.into_path());
        }
    }
    // Parsing every file is the cost: on rayon's threads.
    let kinds = crate::first_error(paths.par_iter().map(|path| {
        if !file::sniff(path)? {
            return Ok(Sorted::Skip);
        }
        let parsed = file::open_header(path).and_then(|(obj, stored)| classify(&obj, stored, path));
        match parsed {
            Ok(Kind::Image { series_uid }) => Ok(Sorted::Image(series_uid)),
            Ok(Kind::Skip) => Ok(Sorted::Skip),
            Err(error) => match file::salvage_series_uid(path) {
                Some(series_uid) => Ok(Sorted::Broken(series_uid, error)),
                None => Err(error),
            },
        }
    }))?;
    let mut groups: BTreeMap<String, SeriesFiles> = BTreeMap::new();
    for (path, kind) in paths.into_iter().zip(kinds) {
        let (uid, broken) = match kind {
            Sorted::Image(uid) => (uid, None),
            Sorted::Broken(uid, error) => (uid, Some(error.to_string())),
            Sorted::Skip => continue,
        };
        let series = groups
            .entry(uid.clone())
            .or_insert_with(|| SeriesFiles::new(uid, Vec::new()));
        series.files.push(path);
        series.unreadable.extend(broken);
    }
    Ok(groups
        .into_values()
        .map(|mut series| {
            series.files.sort();
            series.unreadable.sort();
            series
        })
        .collect())
}

/// What discovery makes of one file.
enum Sorted {
    /// An image of this series.
    Image(String),
    /// A file of this series that cannot be read.
    Broken(String, DicomError),
    Skip,
}

/// Whether a walk error is a symbolic link whose target is gone.
fn dangling_link(e: &walkdir::Error) -> bool {
    let missing = e
        .io_error()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
    missing
        && e.path()
            .is_some_and(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
}
