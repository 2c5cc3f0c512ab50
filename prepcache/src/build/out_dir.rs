//! The cache folder a build writes: refused unless it is a cache (or new,
//! or empty), locked for the build's lifetime so a second build into it
//! stops instead of interleaving with the first, and cleaned of the cache
//! files no current record uses, never of anything else.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use shared::cache::format::{ShardDirFile, INDEX_FILE, MANIFEST_FILE, SHARD_DIR};
use shared::lock::{FolderLock, LOCK_FILE};

use super::sidecar::Sidecar;

/// What `prepcache build` calls itself in a lock refusal.
const LOCK_HOLDER: &str = "prepcache build";

/// Check that `out` may hold a cache, create it and `out/shards`, and lock
/// it until the returned value is dropped.
pub fn open_out(out: &Path) -> Result<FolderLock> {
    if out.exists() && !is_cache_or_empty(out)? {
        bail!(
            "--out {}: the folder is not empty and is not a cache (no {MANIFEST_FILE}, \
             {INDEX_FILE} or {SHARD_DIR}/); name a new or empty folder",
            out.display()
        );
    }
    let shards = out.join(SHARD_DIR);
    fs::create_dir_all(&shards).with_context(|| format!("creating {}", shards.display()))?;
    Ok(FolderLock::acquire(out, LOCK_HOLDER)?)
}

fn is_cache_or_empty(out: &Path) -> Result<bool> {
    if !out.is_dir() {
        bail!("--out {}: not a folder", out.display());
    }
    if [MANIFEST_FILE, INDEX_FILE, SHARD_DIR]
        .iter()
        .any(|name| out.join(name).exists())
    {
        return Ok(true);
    }
    let mut entries = fs::read_dir(out).with_context(|| format!("listing {}", out.display()))?;
    // A lock file alone: a build that stopped before it wrote anything.
    Ok(entries.all(|e| e.is_ok_and(|e| e.file_name() == LOCK_FILE)))
}

/// Remove from `out/shards` the cache files no kept record uses: shards,
/// resume records of scans no longer built, temporaries of interrupted
/// writes. Runs after the new manifest is in place, so the files the old
/// index named are no longer needed. A file is only removed when its name
/// is one the cache format gives and its content is what that name says
/// (a zstd shard, a resume record); anything else there is left alone.
pub fn remove_unused_files(out: &Path, kept: &[&Sidecar]) -> Result<usize> {
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for s in kept {
        keep.insert(out.join(shared::cache::format::sidecar_path(&s.series_uid)));
        if let Some(shard) = s.shard_file() {
            keep.insert(out.join(shard));
        }
    }
    let dir = out.join(SHARD_DIR);
    let mut removed = 0;
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
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
            ShardDirFile::Sidecar => {
                fs::read(&path).is_ok_and(|b| serde_json::from_slice::<Sidecar>(&b).is_ok())
            }
        };
        if ours {
            fs::remove_file(&path)
                .with_context(|| format!("removing unused {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
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
