//! Reading a cache: the manifest and index in memory, shards memory-mapped.
//!
//! Everything that could make a later read go out of bounds is checked once
//! in [`CacheReader::open`], so reading a chunk is a bounds-checked slice of
//! a map, a CRC and one zstd call into a reused buffer.

use std::fs::{self, File};
use std::path::{Component, Path, PathBuf};

use memmap2::Mmap;

use super::codec::ChunkDecoder;
use super::error::CacheError;
use super::format::{
    self, Entry, Index, Manifest, ShardInfo, FORMAT_VERSION, INDEX_FILE, INDEX_MAGIC, MANIFEST_FILE,
};
use super::index_decode::decode_index;
use super::manifest_check::check_manifest;

/// An open, complete cache. `Send + Sync`: share one across loader threads,
/// each with its own [`ChunkDecoder`].
pub struct CacheReader {
    dir: PathBuf,
    manifest: Manifest,
    index: Index,
    /// `None` for empty shard files, which cannot be mapped portably.
    maps: Vec<Option<Mmap>>,
}

impl CacheReader {
    /// Open `dir`. Refuses a cache without a manifest (a build that did not
    /// finish), of another format version, or whose index and shards do not
    /// agree with each other.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let manifest = read_manifest(dir)?;
        let index = read_index(dir, &manifest)?;
        let mut maps = Vec::with_capacity(index.shards.len());
        for shard in &index.shards {
            maps.push(map_shard(dir, shard)?);
        }
        Ok(CacheReader {
            dir: dir.to_owned(),
            manifest,
            index,
            maps,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.entries.is_empty()
    }

    /// All candidates in the book's canonical order.
    pub fn entries(&self) -> &[Entry] {
        &self.index.entries
    }

    pub fn series_uids(&self) -> &[String] {
        &self.index.series
    }

    /// The uid of series number `series` (as in [`Entry::series`]).
    pub fn series_uid(&self, series: u32) -> &str {
        self.index
            .series
            .get(series as usize)
            .map_or("<unknown series>", String::as_str)
    }

    pub fn shards(&self) -> &[ShardInfo] {
        &self.index.shards
    }

    /// Voxels per chunk (`crop_shape` product).
    pub fn chunk_voxels(&self) -> usize {
        self.manifest.chunk_voxels()
    }

    /// A decoder for this cache's codec; keep one per thread.
    pub fn decoder(&self) -> ChunkDecoder {
        // Creating a zstd context only fails when allocation fails, which
        // aborts elsewhere in Rust anyway.
        ChunkDecoder::new(self.manifest.codec.filter, self.chunk_voxels())
            .expect("allocating a zstd context")
    }

    /// The stored (compressed) bytes of candidate `i`. Panics if `i >= len()`.
    pub fn stored_bytes(&self, i: usize) -> &[u8] {
        let e = &self.index.entries[i];
        match &self.maps[e.shard as usize] {
            // In bounds: checked against the shard's size at open.
            Some(map) => &map[e.offset as usize..e.offset as usize + e.length as usize],
            None => &[],
        }
    }

    /// Check candidate `i`'s stored bytes against its CRC without decoding.
    pub fn check_crc(&self, i: usize) -> Result<(), CacheError> {
        self.entry_checked(i)?;
        let e = &self.index.entries[i];
        let got = crc32fast::hash(self.stored_bytes(i));
        if got != e.crc32 {
            return Err(self.chunk_error(
                i,
                format!(
                    "CRC32 mismatch (stored {:08x}, computed {got:08x})",
                    e.crc32
                ),
            ));
        }
        Ok(())
    }

    /// Decode candidate `i` into `out` (`out.len() == chunk_voxels()`),
    /// verifying its CRC first. No allocation.
    pub fn read_chunk(
        &self,
        dec: &mut ChunkDecoder,
        i: usize,
        out: &mut [i16],
    ) -> Result<(), CacheError> {
        self.check_crc(i)?;
        dec.decode(self.stored_bytes(i), out)
            .map_err(|e| self.chunk_error(i, e.to_string()))
    }

    fn entry_checked(&self, i: usize) -> Result<&Entry, CacheError> {
        self.index
            .entries
            .get(i)
            .ok_or_else(|| CacheError::Invalid {
                path: self.dir.clone(),
                reason: format!("candidate {i} requested, the cache holds {}", self.len()),
            })
    }

    fn chunk_error(&self, i: usize, reason: String) -> CacheError {
        let e = &self.index.entries[i];
        CacheError::Chunk {
            path: self.dir.join(&self.index.shards[e.shard as usize].path),
            index: i,
            series_uid: self.series_uid(e.series).to_owned(),
            center_xyz: e.center_xyz,
            reason,
        }
    }
}

/// Read and check `manifest.json` (exists, right version, parses, sizes
/// within limits, `header_checksum` agrees).
pub fn read_manifest(dir: &Path) -> Result<Manifest, CacheError> {
    if !dir.is_dir() {
        return Err(CacheError::Invalid {
            path: dir.to_owned(),
            reason: "no such cache directory".into(),
        });
    }
    let path = dir.join(MANIFEST_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CacheError::Incomplete {
                path: dir.to_owned(),
                reason: format!(
                    "no {MANIFEST_FILE}: the build did not finish (interrupted, still running, \
                     or --shard builds not sealed yet); rerun `prepcache build` (without --shard) \
                     to complete it"
                ),
            })
        }
        Err(e) => return Err(CacheError::Io { path, error: e }),
    };
    let corrupt = |reason: String| CacheError::Corrupt {
        path: path.clone(),
        reason,
    };
    // Version first, from an untyped parse: a newer manifest may not fit our struct.
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
    let found = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no numeric format_version".into()))?;
    if found != u64::from(FORMAT_VERSION) {
        return Err(CacheError::Version {
            path: path.clone(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            expected: FORMAT_VERSION,
        });
    }
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| corrupt(format!("unexpected manifest contents: {e}")))?;
    check_manifest(&manifest, &path)?;
    Ok(manifest)
}

fn read_index(dir: &Path, manifest: &Manifest) -> Result<Index, CacheError> {
    let path = dir.join(INDEX_FILE);
    let corrupt = |reason: String| CacheError::Corrupt {
        path: path.clone(),
        reason,
    };
    // Before reading it: a file of any other size is not the manifest's index.
    let size = fs::metadata(&path).map_err(CacheError::io(&path))?.len();
    if size != manifest.index_bytes {
        return Err(corrupt(format!(
            "index is {size} bytes, the manifest's index_bytes says {}",
            manifest.index_bytes
        )));
    }
    let bytes = fs::read(&path).map_err(CacheError::io(&path))?;
    if bytes.len() < 12 || bytes[..8] != INDEX_MAGIC {
        return Err(corrupt("not a cache index (bad magic)".into()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(CacheError::Version {
            path: path.clone(),
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let fingerprint = format::index_fingerprint(&bytes);
    if fingerprint != manifest.fingerprint {
        return Err(corrupt(format!(
            "index does not match the manifest (BLAKE3 {fingerprint}, manifest says {})",
            manifest.fingerprint
        )));
    }
    let index = decode_index(&bytes, &path)?;
    if index.entries.len() != manifest.candidates
        || index.series.len() != manifest.series
        || index.shards.len() != manifest.shards
    {
        return Err(corrupt(format!(
            "holds {} candidates, {} series, {} shards; the manifest says {}, {}, {}",
            index.entries.len(),
            index.series.len(),
            index.shards.len(),
            manifest.candidates,
            manifest.series,
            manifest.shards
        )));
    }
    for (k, e) in index.entries.iter().enumerate() {
        let fits = index.shards.get(e.shard as usize).is_some_and(|s| {
            e.offset
                .checked_add(u64::from(e.length))
                .is_some_and(|end| end <= s.bytes)
        });
        if (e.series as usize) >= index.series.len() || !fits {
            return Err(corrupt(format!(
                "entry {k} points outside its shard or the series table"
            )));
        }
    }
    Ok(index)
}

fn map_shard(dir: &Path, shard: &ShardInfo) -> Result<Option<Mmap>, CacheError> {
    let relative = Path::new(&shard.path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(CacheError::Corrupt {
            path: dir.join(INDEX_FILE),
            reason: format!("shard path {:?} leaves the cache directory", shard.path),
        });
    }
    let path = dir.join(relative);
    let file = File::open(&path).map_err(CacheError::io(&path))?;
    let size = file.metadata().map_err(CacheError::io(&path))?.len();
    if size != shard.bytes {
        return Err(CacheError::Corrupt {
            path,
            reason: format!("shard is {size} bytes, the index says {}", shard.bytes),
        });
    }
    if size == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only and shards are never modified in place:
    // writers build a new file under a temporary name and rename it over the
    // old one, which leaves this mapping's inode untouched.
    let map = unsafe { Mmap::map(&file) }.map_err(CacheError::io(&path))?;
    Ok(Some(map))
}
