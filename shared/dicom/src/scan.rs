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
    /// The files, sorted by path.
    pub files: Vec<PathBuf>,
}

impl SeriesFiles {
    /// A series from its UID and files, e.g. from a list kept elsewhere.
    pub fn new(series_uid: impl Into<String>, files: Vec<PathBuf>) -> Self {
        SeriesFiles {
            series_uid: series_uid.into(),
            files,
        }
    }
}

/// Every image series under `dir`, at any depth, sorted by UID.
///
/// A file counts when it has the `DICM` marker at offset 128, whatever its
/// name or extension. DICOMDIRs, objects without PixelData and non-image
/// SOP classes (segmentations, RT structures, reports, …) are skipped, as
/// are files without the marker (LIDC's XML annotations, for example). A
/// DICOM file that cannot be parsed is an error naming it.
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
            return Ok(Kind::Skip);
        }
        let (obj, stored) = file::open_header(path)?;
        classify(&obj, stored, path)
    }))?;
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for (path, kind) in paths.into_iter().zip(kinds) {
        if let Kind::Image { series_uid } = kind {
            groups.entry(series_uid).or_default().push(path);
        }
    }
    Ok(groups
        .into_iter()
        .map(|(series_uid, mut files)| {
            files.sort();
            SeriesFiles { series_uid, files }
        })
        .collect())
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
