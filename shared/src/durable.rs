//! Files that a crash, a kill or a full disk leaves either as they were or
//! complete, never half-written: write under a temporary name, fsync,
//! rename into place, fsync the directory. Every writer in the workspace
//! (cache, scans, checkpoints, metrics, CSVs) goes through here.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An I/O error and the file it happened to (the temporary or the target).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct DurableWriteError {
    pub path: PathBuf,
    // Shown in the message, so not also returned as source(): the "a: b"
    // chain printers would repeat it.
    pub error: io::Error,
}

impl DurableWriteError {
    /// Tags an `io::Error` with the file it came from.
    pub fn at(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |error| DurableWriteError {
            path: path.to_owned(),
            error,
        }
    }
}

impl From<DurableWriteError> for io::Error {
    fn from(e: DurableWriteError) -> Self {
        io::Error::new(e.error.kind(), e)
    }
}

/// `<path>.tmp`: where `path` is written before it is renamed into place.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Write `bytes` to `path` so that `path` is either absent/old or complete.
/// On failure (a full disk, say) the temporary file is removed again.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DurableWriteError> {
    let tmp = tmp_path(path);
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(DurableWriteError::at(&tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(DurableWriteError::at(path)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_parent(path)
}

/// A file written and fsynced under its temporary name, not yet in place.
/// Staging every file of an update first and then committing them (renames
/// only, which need no space) keeps a full disk or a write error from
/// leaving a mix of old and new files; dropped uncommitted, it removes the
/// temporary file.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

/// Write `bytes` to `path`'s temporary name and fsync it; [`Staged::commit`]
/// puts it in place.
pub fn stage(path: &Path, bytes: &[u8]) -> Result<Staged, DurableWriteError> {
    let staged = Staged {
        tmp: tmp_path(path),
        path: path.to_owned(),
        committed: false,
    };
    File::create(&staged.tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(DurableWriteError::at(&staged.tmp))?;
    Ok(staged)
}

impl Staged {
    /// Rename into place and make the rename durable.
    pub fn commit(mut self) -> Result<(), DurableWriteError> {
        fs::rename(&self.tmp, &self.path).map_err(DurableWriteError::at(&self.path))?;
        self.committed = true;
        sync_parent(&self.path)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Makes a rename (or removal) in `path`'s directory durable; a no-op where
/// directories cannot be opened.
pub fn sync_parent(path: &Path) -> Result<(), DurableWriteError> {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            d.sync_all().map_err(DurableWriteError::at(dir))?;
        }
    }
    Ok(())
}
