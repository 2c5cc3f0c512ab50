//! One writer per folder: an advisory lock (`flock`, through std's
//! `File::try_lock`) on a `.lock` file inside the folder, held for as long as
//! the [`FolderLock`] lives. The kernel drops it when the holder exits for
//! any reason, `kill -9` included, so a crash never leaves a folder locked.
//!
//! The file records the holder's PID so the refusal can name it. It is never
//! removed: unlinking a lock file races with a second process that opened it
//! a moment before and would then lock an inode nobody else can see.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The name of the lock file inside a locked folder.
pub const LOCK_FILE: &str = ".lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{dir}: in use by another {what} (PID {holder}); wait for it to finish or stop it first"
    )]
    Held {
        dir: PathBuf,
        what: String,
        /// The PID the holder wrote, or "unknown" if it had not yet.
        holder: String,
    },
    /// The lock file could not be opened, locked or written.
    #[error("{path}: cannot lock: {error}")]
    Io { path: PathBuf, error: io::Error },
}

/// Exclusive use of a folder until dropped.
#[derive(Debug)]
pub struct FolderLock {
    // Kept open: closing the last descriptor releases the lock.
    _file: File,
    path: PathBuf,
}

impl FolderLock {
    /// Locks `dir` (which must exist) for this process, or says who holds
    /// it. `what` names the kind of writer in the refusal ("prepcache
    /// build", "train run").
    pub fn acquire(dir: &Path, what: &str) -> Result<FolderLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    what: what.to_owned(),
                    holder: recorded_pid(&mut file),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        record_pid(&mut file).map_err(io_err)?;
        Ok(FolderLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn record_pid(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())
}

fn recorded_pid(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        "" => "unknown".to_owned(),
        pid => pid.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path(), "test").unwrap();
        // flock locks belong to the open file description, so a second open
        // in the same process contends exactly as another process would.
        let err = FolderLock::acquire(dir.path(), "test").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(matches!(err, LockError::Held { .. }));
        drop(first);
        let again = FolderLock::acquire(dir.path(), "test").unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("absent");
        let err = FolderLock::acquire(&gone, "test").unwrap_err();
        assert!(matches!(err, LockError::Io { .. }));
        assert!(err.to_string().contains("absent/.lock"), "{err}");
    }
}
