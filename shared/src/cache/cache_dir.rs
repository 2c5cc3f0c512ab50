//! A cache folder as a writer sees it: the paths the format gives its
//! files, the lock a build holds while it writes ([`CacheDir::begin`]),
//! sealing (index, then manifest: [`CacheDir::seal`]) and which files in
//! `shards/` a writer may remove ([`CacheDir::remove_unused`]). Writers go
//! through this type so that the layout in [`super::format`] is spelled out
//! once, not again in each tool.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::error::CacheError;
use super::format::{
    sidecar_path, Manifest, ShardDirFile, INDEX_FILE, MANIFEST_FILE, SHARD_DIR, SKIPPED_FILE,
};
use super::reader;
use super::writer::{finalize, CacheContents};
use crate::durable::write_atomically;
use crate::lock::{FolderLock, LockError, LockMode, LOCK_FILE};

/// Why a folder could not be opened for writing, or cleaned.
#[derive(Debug, thiserror::Error)]
pub enum CacheDirError {
    #[error("{path}: not a folder")]
    NotAFolder { path: PathBuf },
    #[error(
        "{path}: the folder is not empty and is not a cache (no {m}, {i} or {s}/); \
         name a new or empty folder",
        m = MANIFEST_FILE, i = INDEX_FILE, s = SHARD_DIR
    )]
    NotACache { path: PathBuf },
    #[error("{doing} {path}: {error}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
}

fn io_error(doing: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheDirError {
    let path = path.to_owned();
    move |error| CacheDirError::Io { doing, path, error }
}

/// A cache folder, by its path; nothing is read or created until asked.
#[derive(Clone, Debug)]
pub struct CacheDir {
    root: PathBuf,
}

impl CacheDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CacheDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A file the index or a record names, relative to the cache folder.
    pub fn file(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    pub fn shards_dir(&self) -> PathBuf {
        self.root.join(SHARD_DIR)
    }

    pub fn skipped_csv(&self) -> PathBuf {
        self.root.join(SKIPPED_FILE)
    }

    /// The resume record of a scan.
    pub fn sidecar(&self, series_uid: &str) -> PathBuf {
        self.root.join(sidecar_path(series_uid))
    }

    /// The manifest of the cache that is there, if it is a readable one.
    pub fn read_manifest(&self) -> Result<Manifest, CacheError> {
        reader::read_manifest(&self.root)
    }

    /// Check that the folder may hold a cache (it is one, or new, or
    /// empty), create it and its `shards/`, and lock it for `holder` until
    /// the returned lock is dropped: what a build does before it writes.
    pub fn begin(&self, holder: &str) -> Result<FolderLock, CacheDirError> {
        self.begin_as(holder, LockMode::Exclusive)
    }

    /// [`Self::begin`] in either mode: [`LockMode::Shared`] for writers
    /// that share the folder's scans out between them and never seal.
    pub fn begin_as(&self, holder: &str, mode: LockMode) -> Result<FolderLock, CacheDirError> {
        if self.root.exists() && !self.is_cache_or_empty()? {
            return Err(CacheDirError::NotACache {
                path: self.root.clone(),
            });
        }
        let shards = self.shards_dir();
        fs::create_dir_all(&shards).map_err(io_error("creating", &shards))?;
        Ok(FolderLock::acquire_as(&self.root, holder, mode)?)
    }

    fn is_cache_or_empty(&self) -> Result<bool, CacheDirError> {
        if !self.root.is_dir() {
            return Err(CacheDirError::NotAFolder {
                path: self.root.clone(),
            });
        }
        if [MANIFEST_FILE, INDEX_FILE, SHARD_DIR]
            .iter()
            .any(|name| self.root.join(name).exists())
        {
            return Ok(true);
        }
        let mut entries = fs::read_dir(&self.root).map_err(io_error("listing", &self.root))?;
        // A lock file alone: a build that stopped before it wrote anything.
        Ok(entries.all(|e| e.is_ok_and(|e| e.file_name() == LOCK_FILE)))
    }

    /// Write `skipped.csv`, unless it already holds exactly `text`, so that
    /// a no-op rebuild leaves the cache untouched. Not part of the format:
    /// no reader needs it.
    pub fn write_skipped_list(&self, text: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.skipped_csv();
        if fs::read(&path).is_ok_and(|old| old == text) {
            return Ok(path);
        }
        write_atomically(&path, text)?;
        Ok(path)
    }

    /// Write `index.bin`, then `manifest.json`: from here on readers see
    /// the new cache (see [`finalize`]).
    pub fn seal(&self, contents: CacheContents) -> Result<Manifest, CacheError> {
        finalize(&self.root, contents)
    }

    /// Remove from `shards/` the cache files not in `keep` (full paths):
    /// shards, resume records, temporaries of interrupted writes. Call it
    /// after [`Self::seal`], when the files the old index named are no
    /// longer needed. A file is only removed when its name is one the
    /// format gives and its content is what that name says (a zstd shard,
    /// a resume record as `is_record` tells); anything else there is left
    /// alone. Returns how many were removed.
    pub fn remove_unused(
        &self,
        keep: &HashSet<PathBuf>,
        is_record: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, CacheDirError> {
        let dir = self.shards_dir();
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(io_error("listing", &dir))? {
            let entry = entry.map_err(io_error("listing", &dir))?;
            let path = entry.path();
            let Some(kind) = entry.file_name().to_str().and_then(ShardDirFile::of) else {
                continue;
            };
            if keep.contains(&path) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let ours = match kind {
                ShardDirFile::Temporary => true,
                ShardDirFile::Shard => is_zstd_or_empty(&path),
                ShardDirFile::Sidecar => fs::read(&path).is_ok_and(|b| is_record(&b)),
            };
            if ours {
                fs::remove_file(&path).map_err(io_error("removing unused", &path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A shard is zstd frames back to back (or nothing, when every candidate of
/// its scan was skipped).
fn is_zstd_or_empty(path: &Path) -> bool {
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    let mut head = Vec::with_capacity(4);
    fs::File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .is_ok_and(|n| n == 0 || head == ZSTD_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn begin_refuses_a_folder_that_is_not_a_cache() {
        let t = temp();
        fs::write(t.path().join("notes.txt"), b"mine").unwrap();
        let err = CacheDir::new(t.path()).begin("test").unwrap_err();
        assert!(matches!(err, CacheDirError::NotACache { .. }), "{err}");
        assert!(!t.path().join(SHARD_DIR).exists());
    }

    #[test]
    fn begin_creates_shards_and_locks() {
        let t = temp();
        let dir = CacheDir::new(t.path().join("new"));
        let _lock = dir.begin("test").unwrap();
        assert!(dir.shards_dir().is_dir());
        let again = dir.begin("test").unwrap_err();
        assert!(matches!(again, CacheDirError::Lock(_)), "{again}");
    }

    #[test]
    fn remove_unused_removes_only_format_files_not_kept() {
        let t = temp();
        let dir = CacheDir::new(t.path());
        let _lock = dir.begin("test").unwrap();
        let shards = dir.shards_dir();
        let write = |name: &str, bytes: &[u8]| {
            fs::write(shards.join(name), bytes).unwrap();
            shards.join(name)
        };
        let kept = write("a.0123.zst", &[0x28, 0xb5, 0x2f, 0xfd, 1]);
        write("b.0123.zst", &[0x28, 0xb5, 0x2f, 0xfd, 1]);
        write("c.zst", b"not zstd");
        write("b.json", b"record");
        write("d.json", b"a user's file");
        write("b.zst.tmp", b"partial");
        write("notes.txt", b"mine");
        let keep = HashSet::from([kept.clone()]);
        let removed = dir.remove_unused(&keep, |b| b == b"record").unwrap();
        assert_eq!(removed, 3);
        let mut left: Vec<String> = fs::read_dir(&shards)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.0123.zst", "c.zst", "d.json", "notes.txt"]);
    }

    #[test]
    fn skipped_list_is_not_rewritten_when_unchanged() {
        let t = temp();
        let dir = CacheDir::new(t.path());
        let path = dir
            .write_skipped_list(b"seriesuid,csv,line,reason\n")
            .unwrap();
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        dir.write_skipped_list(b"seriesuid,csv,line,reason\n")
            .unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
    }
}
