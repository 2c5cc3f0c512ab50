use std::path::PathBuf;

/// Everything that can go wrong opening, reading or writing a cache. Each
/// variant names the file; chunk errors also name the candidate.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        // Shown in the message, so not also returned as source(): the
        // "a: b" chain printers would repeat it.
        error: std::io::Error,
    },
    #[error("{path}: incomplete cache: {reason}")]
    Incomplete { path: PathBuf, reason: String },
    #[error(
        "{path}: cache format version {found}, but this program reads version {expected}; \
         rebuild the cache with this version of prepcache"
    )]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path}: candidate {index} (series {series_uid}, centre xyz {center_xyz:?}): {reason}"
    )]
    Chunk {
        path: PathBuf,
        index: usize,
        series_uid: String,
        center_xyz: [f64; 3],
        reason: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl CacheError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io {
            path,
            error: source,
        }
    }
}

impl From<crate::durable::DurableWriteError> for CacheError {
    fn from(e: crate::durable::DurableWriteError) -> Self {
        CacheError::Io {
            path: e.path,
            error: e.error,
        }
    }
}
