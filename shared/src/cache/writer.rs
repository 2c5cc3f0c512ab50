//! Writing a cache: per-scan shards, then `index.bin`, then `manifest.json`.
//!
//! The order is what makes a cache safe to interrupt: shards are written
//! under a temporary name and renamed when complete, and [`finalize`]
//! writes the manifest last. A reader that finds a manifest therefore sees a
//! complete, consistent cache. Rewriting a cache in place, [`CacheBuilder`]
//! first hides the old one ([`begin_update`] removes its manifest);
//! `prepcache build` instead writes content-named shards
//! ([`ShardWriter::create_content_named`]) beside the old ones, so the old
//! cache stays readable until [`finalize`] replaces its index and manifest.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::codec::ChunkEncoder;
use super::error::CacheError;
use super::format::{
    self, Codec, Entry, Index, Manifest, ShardInfo, Skipped, DTYPE, FORMAT_VERSION, INDEX_FILE,
    INDEX_MAGIC, MANIFEST_FILE, SHARD_DIR,
};
use crate::durable::{stage, sync_parent, tmp_path, write_atomically};
use crate::hu::{HU_MAX, HU_MIN};
use crate::luna::{canonical_order, OrderKey};

/// Create `dir` (and `dir/shards`) if needed and remove its manifest, so the
/// cache reads as incomplete until [`finalize`] runs.
pub fn begin_update(dir: &Path) -> Result<(), CacheError> {
    let shards = dir.join(SHARD_DIR);
    fs::create_dir_all(&shards).map_err(CacheError::io(&shards))?;
    let manifest = dir.join(MANIFEST_FILE);
    match fs::remove_file(&manifest) {
        Ok(()) => Ok(sync_parent(&manifest)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CacheError::Io {
            path: manifest,
            error: e,
        }),
    }
}

/// Where one frame landed in its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredFrame {
    pub offset: u64,
    pub length: u32,
    pub crc32: u32,
}

/// Appends frames to one shard file; the file appears under its final name
/// only after [`ShardWriter::finish`], and a writer dropped before that
/// (a write error, a full disk, an abandoned build) removes its temporary
/// file instead of leaving it to fill the disk.
pub struct ShardWriter {
    dir: PathBuf,
    series_uid: String,
    /// `shards/<uid>.zst`: the final name of a fixed-name shard; for a
    /// content-named one, the name its temporary file is derived from.
    path: PathBuf,
    tmp: PathBuf,
    file: BufWriter<File>,
    len: u64,
    /// Some: the shard is named after its content when finished.
    content: Option<blake3::Hasher>,
    renamed: bool,
}

/// A shard in place: its path as the index records it, and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedShard {
    pub path: String,
    pub bytes: u64,
}

impl ShardWriter {
    /// Start `dir/shards/<series_uid>.zst`.
    pub fn create(dir: &Path, series_uid: &str) -> Result<Self, CacheError> {
        Self::start(dir, series_uid, None)
    }

    /// Start a shard named after its content
    /// ([`format::content_shard_path`]) once finished: it can be written
    /// while an index that names the scan's previous shard is still in use.
    pub fn create_content_named(dir: &Path, series_uid: &str) -> Result<Self, CacheError> {
        Self::start(dir, series_uid, Some(blake3::Hasher::new()))
    }

    fn start(
        dir: &Path,
        series_uid: &str,
        content: Option<blake3::Hasher>,
    ) -> Result<Self, CacheError> {
        let path = dir.join(format::shard_path(series_uid));
        let tmp = tmp_path(&path);
        let file = File::create(&tmp).map_err(CacheError::io(&tmp))?;
        Ok(ShardWriter {
            dir: dir.to_owned(),
            series_uid: series_uid.to_owned(),
            path,
            tmp,
            file: BufWriter::with_capacity(1 << 20, file),
            len: 0,
            content,
            renamed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes appended so far: the shard's size once finished.
    pub fn bytes_written(&self) -> u64 {
        self.len
    }

    pub fn append(&mut self, frame: &[u8]) -> Result<StoredFrame, CacheError> {
        let length = u32::try_from(frame.len()).map_err(|_| CacheError::Invalid {
            path: self.path.clone(),
            reason: format!(
                "frame of {} bytes does not fit the index's u32 length",
                frame.len()
            ),
        })?;
        self.file
            .write_all(frame)
            .map_err(CacheError::io(&self.tmp))?;
        if let Some(h) = &mut self.content {
            h.update(frame);
        }
        let stored = StoredFrame {
            offset: self.len,
            length,
            crc32: crc32fast::hash(frame),
        };
        self.len += u64::from(length);
        Ok(stored)
    }

    /// Flush, fsync and rename into place; returns the shard's size.
    pub fn finish(self) -> Result<u64, CacheError> {
        self.finish_named().map(|f| f.bytes)
    }

    /// Flush, fsync and rename into place; returns where it went. A
    /// content-named shard whose name exists already replaces a file of the
    /// same bytes, so an index naming it stays valid.
    pub fn finish_named(mut self) -> Result<FinishedShard, CacheError> {
        self.file.flush().map_err(CacheError::io(&self.tmp))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(CacheError::io(&self.tmp))?;
        let relative = match &self.content {
            Some(h) => format::content_shard_path(&self.series_uid, &h.finalize()),
            None => format::shard_path(&self.series_uid),
        };
        let path = self.dir.join(&relative);
        fs::rename(&self.tmp, &path).map_err(CacheError::io(&path))?;
        self.renamed = true;
        sync_parent(&path)?;
        Ok(FinishedShard {
            path: path_to_index_string(&relative),
            bytes: self.len,
        })
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: the file is garbage either way, and the next
            // build truncates it if it survives.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// What [`finalize`] needs besides the directory.
#[derive(Clone, Debug)]
pub struct CacheContents {
    pub tool: String,
    pub codec: Codec,
    pub crop_shape: [usize; 3],
    pub series: Vec<String>,
    pub shards: Vec<ShardInfo>,
    /// In canonical order; `series`/`shard` index the tables above.
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
    pub missing_series: usize,
    pub missing_candidates: usize,
    pub inputs_fingerprint: String,
}

/// Write `index.bin`, then `manifest.json` (last). Checks that every entry
/// points inside a listed shard, so a bug here cannot produce a cache that
/// reads as complete but is not. Both files are written in full before
/// either is renamed into place, so a failure (a full disk) leaves the
/// cache that was there readable; only a crash between the two renames can
/// leave it incomplete.
pub fn finalize(dir: &Path, contents: CacheContents) -> Result<Manifest, CacheError> {
    let index_path = dir.join(INDEX_FILE);
    let voxels: usize = contents.crop_shape.iter().product();
    for (k, e) in contents.entries.iter().enumerate() {
        let shard = contents.shards.get(e.shard as usize);
        let fits = shard.is_some_and(|s| {
            e.offset
                .checked_add(u64::from(e.length))
                .is_some_and(|end| end <= s.bytes)
        });
        if (e.series as usize) >= contents.series.len() || !fits {
            return Err(CacheError::Invalid {
                path: index_path,
                reason: format!("entry {k} points outside the series/shard tables: {e:?}"),
            });
        }
    }
    let positives = contents.entries.iter().filter(|e| e.is_nodule).count();
    let index = Index {
        magic: INDEX_MAGIC,
        version: FORMAT_VERSION,
        series: contents.series,
        shards: contents.shards,
        entries: contents.entries,
    };
    let bytes = bincode::serde::encode_to_vec(&index, format::bincode_config()).map_err(|e| {
        CacheError::Invalid {
            path: index_path.clone(),
            reason: format!("encoding the index: {e}"),
        }
    })?;
    let index_staged = stage(&index_path, &bytes)?;
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        tool: contents.tool,
        crop_shape: contents.crop_shape,
        dtype: DTYPE.to_owned(),
        codec: contents.codec,
        clip_hu: [HU_MIN, HU_MAX],
        candidates: index.entries.len(),
        positives,
        series: index.series.len(),
        shards: index.shards.len(),
        stored_bytes: index.shards.iter().map(|s| s.bytes).sum(),
        raw_bytes: (index.entries.len() * voxels * 2) as u64,
        index_bytes: bytes.len() as u64,
        fingerprint: format::index_fingerprint(&bytes),
        skipped: contents.skipped,
        missing_series: contents.missing_series,
        missing_candidates: contents.missing_candidates,
        inputs_fingerprint: contents.inputs_fingerprint,
        header_checksum: None,
    };
    manifest.header_checksum = Some(manifest.computed_header_checksum());
    let manifest_staged = stage(&dir.join(MANIFEST_FILE), &manifest_json(dir, &manifest)?)?;
    index_staged.commit()?;
    manifest_staged.commit()?;
    Ok(manifest)
}

/// Write `manifest` as it is (its `header_checksum` included).
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), CacheError> {
    let json = manifest_json(dir, manifest)?;
    Ok(write_atomically(&dir.join(MANIFEST_FILE), &json)?)
}

fn manifest_json(dir: &Path, manifest: &Manifest) -> Result<Vec<u8>, CacheError> {
    let mut json = serde_json::to_vec_pretty(manifest).map_err(|e| CacheError::Invalid {
        path: dir.join(MANIFEST_FILE),
        reason: format!("encoding the manifest: {e}"),
    })?;
    json.push(b'\n');
    Ok(json)
}

/// What a candidate is, apart from its pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CandidateMeta {
    pub center_xyz: [f64; 3],
    pub center_irc: [i32; 3],
    pub is_nodule: bool,
    pub diameter_mm: f64,
}

/// A simple whole-cache writer for tools and tests: push chunks of any
/// series in any order, and [`CacheBuilder::finish`] sorts them into the
/// book's canonical order. (`prepcache build` uses the pieces above directly
/// to build scans in parallel and resume.)
pub struct CacheBuilder {
    dir: PathBuf,
    crop_shape: [usize; 3],
    encoder: ChunkEncoder,
    shards: BTreeMap<String, (ShardWriter, Vec<(CandidateMeta, StoredFrame)>)>,
    skipped: Vec<Skipped>,
}

impl CacheBuilder {
    pub fn create(dir: &Path, codec: Codec, crop_shape: [usize; 3]) -> Result<Self, CacheError> {
        begin_update(dir)?;
        let voxels = crop_shape.iter().product();
        let encoder = ChunkEncoder::new(codec, voxels).map_err(|e| CacheError::Invalid {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(CacheBuilder {
            dir: dir.to_owned(),
            crop_shape,
            encoder,
            shards: BTreeMap::new(),
            skipped: Vec::new(),
        })
    }

    pub fn push(
        &mut self,
        series_uid: &str,
        meta: CandidateMeta,
        chunk: &[i16],
    ) -> Result<(), CacheError> {
        let (writer, metas) = match self.shards.entry(series_uid.to_owned()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((ShardWriter::create(&self.dir, series_uid)?, Vec::new()))
            }
        };
        let frame = self
            .encoder
            .encode(chunk)
            .map_err(|e| CacheError::Invalid {
                path: writer.path().to_owned(),
                reason: e.to_string(),
            })?;
        let stored = writer.append(frame)?;
        metas.push((meta, stored));
        Ok(())
    }

    pub fn skip(&mut self, skipped: Skipped) {
        self.skipped.push(skipped);
    }

    pub fn finish(self, tool: &str) -> Result<Manifest, CacheError> {
        let mut series = Vec::new();
        let mut shards = Vec::new();
        let mut rows = Vec::new();
        for (k, (uid, (writer, metas))) in self.shards.into_iter().enumerate() {
            let path = format::shard_path(&uid);
            let bytes = writer.finish()?;
            shards.push(ShardInfo {
                path: path_to_index_string(&path),
                bytes,
            });
            for (meta, stored) in metas {
                rows.push((k, meta, stored));
            }
            series.push(uid);
        }
        let key = |(k, m, _): &(usize, CandidateMeta, StoredFrame)| OrderKey {
            is_nodule: m.is_nodule,
            diameter_mm: m.diameter_mm,
            series_uid: &series[*k],
            center_xyz: m.center_xyz,
        };
        rows.sort_by(|a, b| canonical_order(&key(a), &key(b)));
        let entries = rows
            .into_iter()
            .map(|(k, m, s)| Entry {
                series: k as u32,
                center_xyz: m.center_xyz,
                center_irc: m.center_irc,
                is_nodule: m.is_nodule,
                diameter_mm: m.diameter_mm,
                shard: k as u32,
                offset: s.offset,
                length: s.length,
                crc32: s.crc32,
            })
            .collect();
        let contents = CacheContents {
            tool: tool.to_owned(),
            codec: self.encoder.codec(),
            crop_shape: self.crop_shape,
            series,
            shards,
            entries,
            skipped: self.skipped,
            missing_series: 0,
            missing_candidates: 0,
            inputs_fingerprint: String::new(),
        };
        finalize(&self.dir, contents)
    }
}

/// Shard paths in the index are `/`-separated whatever the platform.
pub fn path_to_index_string(relative: &Path) -> String {
    relative
        .iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
