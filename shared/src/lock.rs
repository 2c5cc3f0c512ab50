//! One writer per folder: an advisory lock (`flock`, through std's
//! `File::try_lock`) on a `.lock` file inside the folder, held for as long as
//! the [`FolderLock`] lives. The kernel drops it when the holder exits for
//! any reason, `kill -9` included, so a crash never leaves a folder locked.
//!
//! A folder can also be shared ([`LockMode::Shared`]) by writers that have
//! divided its files between them (`prepcache build --shard K/N`, one per
//! machine): they exclude an exclusive writer, and it excludes them, but
//! not each other. On NFS, Linux carries `flock` over as a byte-range lock
//! the server sees, so this holds across machines too.
//!
//! The file records the last holder's PID and what it is, so the refusal
//! can name it. It is never
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
        /// What the holder recorded it is, or else what the refused caller is.
        what: String,
        /// The PID the holder wrote, or "unknown" if it had not yet.
        holder: String,
    },
    /// The lock file could not be opened, locked or written.
    #[error("{path}: cannot lock: {error}")]
    Io { path: PathBuf, error: io::Error },
}

/// Whether other holders may share the folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// The only writer.
    Exclusive,
    /// One of several writers that never write the same file.
    Shared,
}

/// Use of a folder until dropped.
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
        Self::acquire_as(dir, what, LockMode::Exclusive)
    }

    /// [`Self::acquire`] in either mode.
    pub fn acquire_as(dir: &Path, what: &str, mode: LockMode) -> Result<FolderLock, LockError> {
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
        let locked = match mode {
            LockMode::Exclusive => file.try_lock(),
            LockMode::Shared => file.try_lock_shared(),
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let (holder, recorded_what) = recorded_holder(&mut file);
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    what: recorded_what.unwrap_or_else(|| what.to_owned()),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        record_holder(&mut file, what).map_err(io_err)?;
        Ok(FolderLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One line, `PID what`, in a single write: shared holders each write
/// theirs, and the refusal names whichever came last.
fn record_holder(file: &mut File, what: &str) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(format!("{} {what}\n", std::process::id()).as_bytes())
}

/// The holder's PID ("unknown" if it had not written it yet) and what it
/// said it is (absent in files written before it did).
fn recorded_holder(file: &mut File) -> (String, Option<String>) {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(' ') {
        _ if line.is_empty() => ("unknown".to_owned(), None),
        Some((pid, what)) => (pid.to_owned(), Some(what.trim().to_owned())),
        None => (line.to_owned(), None),
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
    fn shared_holders_coexist_and_exclude_an_exclusive_one_which_excludes_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = FolderLock::acquire_as(dir.path(), "shard 1/2", LockMode::Shared).unwrap();
        let b = FolderLock::acquire_as(dir.path(), "shard 2/2", LockMode::Shared).unwrap();
        let err = FolderLock::acquire(dir.path(), "build").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("in use by another shard 2/2 (PID "), "{msg}");
        drop((a, b));
        let sole = FolderLock::acquire(dir.path(), "build").unwrap();
        let err = FolderLock::acquire_as(dir.path(), "shard", LockMode::Shared).unwrap_err();
        assert!(err.to_string().contains("in use by another build"), "{err}");
        drop(sole);
    }

    #[test]
    fn a_lock_file_with_a_pid_alone_names_the_callers_kind() {
        let dir = tempfile::tempdir().unwrap();
        fs_write(&dir.path().join(LOCK_FILE), "4242\n");
        let held = File::open(dir.path().join(LOCK_FILE)).unwrap();
        held.lock().unwrap();
        let err = FolderLock::acquire(dir.path(), "train run").unwrap_err();
        assert!(
            err.to_string().contains("another train run (PID 4242)"),
            "{err}"
        );
    }

    fn fs_write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
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
