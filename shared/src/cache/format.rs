//! The on-disk layout of a candidate cache, declared in one place.
//!
//! Writer and reader speak only what is declared here; change anything below
//! and bump [`FORMAT_VERSION`], so that old readers refuse new caches (and the
//! other way round) with a clear message instead of misreading them.
//!
//! # Directory layout
//!
//! ```text
//! CACHE/
//!   manifest.json        written LAST, atomically; its presence means "complete"
//!   index.bin            series table, shard table, one fixed-size record per candidate
//!   shards/<uid>.<h>.zst one per scan: concatenated independent zstd frames, one per candidate
//!   shards/<uid>.json    per-scan sidecar (prepcache's resume record; readers ignore it)
//!   skipped.csv          the CSV rows that were not cached, and why (for people; readers ignore it)
//!   .lock                held by the build writing the cache (readers ignore it)
//! ```
//!
//! Readers open the shards the index names and nothing else. `prepcache`
//! names a shard after its content (`<h>`: the first 16 hex digits of the
//! BLAKE3 of its bytes, [`content_shard_path`]), so a rebuild writes new
//! shards beside the ones the current index uses and the old cache stays
//! readable until the new manifest replaces it; caches written before that
//! name their shards `shards/<uid>.zst` ([`shard_path`]) and read the same.
//!
//! # `manifest.json`
//!
//! A JSON object ([`Manifest`]): `format_version`, `tool`, `crop_shape`
//! (`[32, 48, 48]`, i r c), `dtype` (`"int16"`), `codec`
//! (`{"compressor": "zstd", "filter": "byte_shuffle", "level": -1}`), `clip_hu`
//! (`[-1000, 1000]`), the counts `candidates`, `positives`, `series`,
//! `shards`, `stored_bytes` (sum of shard sizes), `raw_bytes`
//! (`candidates × voxels × 2`), `index_bytes`, `fingerprint` (BLAKE3 of
//! `index.bin`, hex; it covers every record and checksum, so it names the
//! cache's content), `skipped` (what the build left out, and why),
//! `missing_series`/`missing_candidates` (CSV rows whose scan is not on disk)
//! and `inputs_fingerprint` (digest of the build's inputs), and
//! `header_checksum`.
//!
//! `header_checksum` (`"crc32:<8 hex>"`) covers every field that says how to
//! find and decode the bytes, so an edited manifest is refused instead of
//! misread: CRC-32 (IEEE, as zlib's) of the UTF-8 text [`header_text`]
//! builds, one `name=value` line each, in this order: the line
//! `luna-cache-header-v1`, then `format_version`, `dtype`, `crop_shape`
//! (`32,48,48`), `clip_hu` (`-1000,1000`), `codec.compressor`,
//! `codec.filter`, `codec.level`, `candidates`, `positives`, `series`,
//! `shards`, `stored_bytes`, `raw_bytes`, `index_bytes`, `fingerprint`;
//! every line ends in `\n`. Caches written before the field existed have
//! none and are read as before.
//!
//! Readers also refuse sizes no real cache has before allocating anything
//! for them: a chunk above [`MAX_CHUNK_VOXELS`] voxels, a crop edge above
//! [`MAX_CROP_EDGE`], counts that `index.bin` cannot hold.
//!
//! # `index.bin`
//!
//! bincode 2 with `bincode::config::legacy()`: fixed-width little-endian
//! integers, `u64` lengths, no padding. In order:
//!
//! | field      | encoding                                                        |
//! |------------|-----------------------------------------------------------------|
//! | magic      | 8 bytes, [`INDEX_MAGIC`] = `b"LUNACIDX"`                        |
//! | version    | `u32`, = [`FORMAT_VERSION`]                                     |
//! | series     | `u64` count, then per series: `u64` byte length + UTF-8 uid     |
//! | shards     | `u64` count, then per shard: `u64` length + UTF-8 path relative to the cache dir, `u64` file size |
//! | entries    | `u64` count, then [`ENTRY_RECORD_BYTES`] (69) bytes per [`Entry`] |
//!
//! An entry record, little-endian, unaligned:
//!
//! | offset | type      | field                                          |
//! |--------|-----------|------------------------------------------------|
//! | 0      | `u32`     | `series` (index into the series table)         |
//! | 4      | `3×f64`   | `center_xyz` (mm, x y z, from candidates.csv)  |
//! | 28     | `3×i32`   | `center_irc` (voxel, i r c, before shifting)   |
//! | 40     | `u8`      | `is_nodule` (0/1)                              |
//! | 41     | `f64`     | `diameter_mm` (0 when no annotation matched)   |
//! | 49     | `u32`     | `shard` (index into the shard table)           |
//! | 53     | `u64`     | `offset` of the frame in the shard             |
//! | 61     | `u32`     | `length` of the frame in bytes                 |
//! | 65     | `u32`     | `crc32` (IEEE) of the stored frame bytes       |
//!
//! Entries are in the book's canonical candidate order (`shared::luna::canonical_order`: sorted
//! descending on `(is_nodule, diameter_mm, series_uid, center_xyz)`), so entry
//! `k` is the book's `candidateInfo_list[k]` for the scans present.
//!
//! # Chunks
//!
//! Each candidate is one independent zstd frame (content size recorded) that
//! decompresses to `2 × voxels` bytes: the crop as int16, `[i][r][c]` order,
//! HU clipped to `clip_hu`, after the codec's filter. Filter `byte_shuffle`
//! stores all low bytes, then all high bytes (little-endian halves of each
//! value); filter `none` stores plain little-endian int16. Independent frames
//! let any chunk be read alone, in any order, from any thread.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Bump on any change to the layout described in this module.
pub const FORMAT_VERSION: u32 = 1;

pub const INDEX_MAGIC: [u8; 8] = *b"LUNACIDX";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const INDEX_FILE: &str = "index.bin";
pub const SHARD_DIR: &str = "shards";
pub const SHARD_EXTENSION: &str = "zst";
pub const SIDECAR_EXTENSION: &str = "json";
/// `seriesuid,csv,line,reason`: one row per candidate row of the CSV that is
/// not in the cache. Not part of the format (no reader needs it), so it
/// needs no version bump.
pub const SKIPPED_FILE: &str = "skipped.csv";
/// Size of one encoded [`Entry`] in `index.bin`.
pub const ENTRY_RECORD_BYTES: usize = 69;
pub const DTYPE: &str = "int16";

/// `bincode::config::legacy()`: the fixed-width encoding Python can parse
/// with `struct`/numpy.
pub fn bincode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::NoLimit,
> {
    bincode::config::legacy()
}

/// The manifest's `fingerprint` of an `index.bin` holding `bytes`: BLAKE3, hex.
pub fn index_fingerprint(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Shard file of a scan, relative to the cache dir.
pub fn shard_path(series_uid: &str) -> PathBuf {
    PathBuf::from(SHARD_DIR).join(format!("{series_uid}.{SHARD_EXTENSION}"))
}

/// Shard file of a scan holding `bytes`, relative to the cache dir: named
/// after its content, so a rebuild that changes a shard writes a new file
/// and never touches the one the current index points to.
pub fn content_shard_path(series_uid: &str, bytes_blake3: &blake3::Hash) -> PathBuf {
    let hex = bytes_blake3.to_hex();
    PathBuf::from(SHARD_DIR).join(format!(
        "{series_uid}.{}.{SHARD_EXTENSION}",
        &hex[..CONTENT_HASH_DIGITS]
    ))
}

/// Hex digits of the shard's BLAKE3 in its name: 64 bits, so two different
/// shards of one scan never share a name by accident.
pub const CONTENT_HASH_DIGITS: usize = 16;

/// Sidecar (resume record) of a scan, relative to the cache dir.
pub fn sidecar_path(series_uid: &str) -> PathBuf {
    PathBuf::from(SHARD_DIR).join(format!("{series_uid}.{SIDECAR_EXTENSION}"))
}

/// The kinds of file the format puts in `shards/`, told by name. Writers
/// remove nothing else there: whatever else a user keeps in the folder is
/// not theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardDirFile {
    /// `<uid>.zst` or `<uid>.<h>.zst`.
    Shard,
    /// `<uid>.json`, a resume record.
    Sidecar,
    /// `<shard or sidecar>.tmp`, left by an interrupted write.
    Temporary,
}

impl ShardDirFile {
    pub fn of(name: &str) -> Option<ShardDirFile> {
        let named = |ext: &str| {
            name.strip_suffix(ext)
                .and_then(|stem| stem.strip_suffix('.'))
                .is_some_and(|stem| !stem.is_empty())
        };
        if named(SHARD_EXTENSION) {
            Some(ShardDirFile::Shard)
        } else if named(SIDECAR_EXTENSION) {
            Some(ShardDirFile::Sidecar)
        } else {
            let stem = name.strip_suffix(".tmp")?;
            ShardDirFile::of(stem)
                .filter(|k| *k != ShardDirFile::Temporary)
                .map(|_| ShardDirFile::Temporary)
        }
    }
}

/// A filter applied to the int16 chunk before zstd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Plain little-endian int16.
    None,
    /// All low bytes, then all high bytes: the high bytes of clipped HU take
    /// few distinct values, so zstd finds long runs in the second half.
    ByteShuffle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compressor {
    Zstd,
}

/// How chunks are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Codec {
    pub compressor: Compressor,
    pub filter: Filter,
    /// zstd level (1–22; negative levels are zstd's fast modes).
    pub level: i32,
}

impl Codec {
    // zstd's fast level -1 stores literals raw: on byte-shuffled CT crops
    // (a compressible high-byte plane, a noisy low-byte plane that entropy
    // coding barely shrinks) that costs ~14% in size over level 1 and buys
    // 1.5x faster compression and 2x faster decompression, which is the
    // loader's bound (BENCHMARKS.md section 2). Level 1 and 3 store the same.
    pub const DEFAULT_LEVEL: i32 = -1;

    pub fn zstd(filter: Filter, level: i32) -> Self {
        Codec {
            compressor: Compressor::Zstd,
            filter,
            level,
        }
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::zstd(Filter::ByteShuffle, Codec::DEFAULT_LEVEL)
    }
}

impl Filter {
    /// The name `manifest.json` uses (its serde name).
    pub fn name(self) -> &'static str {
        match self {
            Filter::None => "none",
            Filter::ByteShuffle => "byte_shuffle",
        }
    }
}

impl Compressor {
    /// The name `manifest.json` uses (its serde name).
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "zstd level {} (filter {})",
            self.level,
            self.filter.name()
        )
    }
}

/// One candidate: where it is, what it is, and where its chunk is stored.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub series: u32,
    pub center_xyz: [f64; 3],
    pub center_irc: [i32; 3],
    pub is_nodule: bool,
    pub diameter_mm: f64,
    pub shard: u32,
    pub offset: u64,
    pub length: u32,
    pub crc32: u32,
}

/// A shard file as listed in `index.bin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Relative to the cache dir, `/`-separated.
    pub path: String,
    pub bytes: u64,
}

/// The whole of `index.bin`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub magic: [u8; 8],
    pub version: u32,
    pub series: Vec<String>,
    pub shards: Vec<ShardInfo>,
    pub entries: Vec<Entry>,
}

/// Something the build left out, recorded so `info` can tell why a count is
/// lower than the CSV's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub series_uid: String,
    /// `None` when the whole scan was skipped.
    pub center_xyz: Option<[f64; 3]>,
    pub reason: String,
}

/// The contents of `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Name and version of the program that wrote the cache.
    pub tool: String,
    pub crop_shape: [usize; 3],
    pub dtype: String,
    pub codec: Codec,
    pub clip_hu: [i16; 2],
    pub candidates: usize,
    pub positives: usize,
    pub series: usize,
    pub shards: usize,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
    pub index_bytes: u64,
    /// BLAKE3 of `index.bin`, hex.
    pub fingerprint: String,
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Series named in candidates.csv but absent from the data dir, and
    /// their candidates (left out, as the book's `requireOnDisk` does).
    #[serde(default)]
    pub missing_series: usize,
    #[serde(default)]
    pub missing_candidates: usize,
    /// Writer-defined digest of everything the cache was built from;
    /// `prepcache build` compares it to tell an up-to-date cache.
    #[serde(default)]
    pub inputs_fingerprint: String,
    /// `crc32:<hex>` of [`header_text`]; absent in caches written before it
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_checksum: Option<String>,
}

impl Manifest {
    pub fn chunk_voxels(&self) -> usize {
        self.crop_shape.iter().product()
    }

    /// What `header_checksum` should say for the other fields.
    pub fn computed_header_checksum(&self) -> String {
        format!(
            "crc32:{:08x}",
            crc32fast::hash(header_text(self).as_bytes())
        )
    }
}

/// Largest chunk a reader accepts (the book's is 73,728 voxels); a bigger
/// `crop_shape` is an edited or corrupt manifest, refused before a decode
/// buffer of that size is allocated.
pub const MAX_CHUNK_VOXELS: usize = 1 << 24;
/// Largest crop edge a reader accepts.
pub const MAX_CROP_EDGE: usize = 4096;

/// The canonical text `header_checksum` is computed over (see the module
/// documentation; `scripts/lunacache.py` builds the same).
pub fn header_text(m: &Manifest) -> String {
    let join = |v: &[String]| v.join(",");
    let lines = [
        "luna-cache-header-v1".to_owned(),
        format!("format_version={}", m.format_version),
        format!("dtype={}", m.dtype),
        format!("crop_shape={}", join(&m.crop_shape.map(|v| v.to_string()))),
        format!("clip_hu={}", join(&m.clip_hu.map(|v| v.to_string()))),
        format!("codec.compressor={}", m.codec.compressor.name()),
        format!("codec.filter={}", m.codec.filter.name()),
        format!("codec.level={}", m.codec.level),
        format!("candidates={}", m.candidates),
        format!("positives={}", m.positives),
        format!("series={}", m.series),
        format!("shards={}", m.shards),
        format!("stored_bytes={}", m.stored_bytes),
        format!("raw_bytes={}", m.raw_bytes),
        format!("index_bytes={}", m.index_bytes),
        format!("fingerprint={}", m.fingerprint),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    text
}
