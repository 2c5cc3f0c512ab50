//! The one error type of the crate: every refusal names the file, folder or
//! series concerned and says why, so it can be shown to a user as it is.

use std::path::{Path, PathBuf};

/// Why a DICOM folder or series could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DicomError {
    /// The operating system failed to list, open or read a path.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder being read.
        path: PathBuf,
        /// The underlying I/O error (shown in the message, so not also
        /// returned as `source()`).
        error: std::io::Error,
    },
    /// One file is truncated, malformed or uses something this reader
    /// refuses (multi-frame, non-CT, unsupported pixel format, …).
    #[error("{path}: {reason}")]
    File {
        /// The DICOM file at fault.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The files of a series do not form one regular volume (mixed
    /// orientations or sizes, a missing slice, gantry tilt, …).
    #[error("series {series_uid}: {reason}")]
    Series {
        /// The SeriesInstanceUID concerned.
        series_uid: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A folder given to [`crate::read_series_dir`] holds no series or
    /// several.
    #[error("{path}: {reason}")]
    Folder {
        /// The folder searched.
        path: PathBuf,
        /// What was found instead of exactly one series.
        reason: String,
    },
}

impl DicomError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        DicomError::Io {
            path: path.to_owned(),
            error,
        }
    }

    pub(crate) fn file(path: &Path, reason: impl Into<String>) -> Self {
        DicomError::File {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn series(series_uid: &str, reason: impl Into<String>) -> Self {
        DicomError::Series {
            series_uid: series_uid.to_owned(),
            reason: reason.into(),
        }
    }
}
