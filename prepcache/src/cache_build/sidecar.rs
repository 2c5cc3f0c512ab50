//! The per-scan resume record, `shards/<uid>.json`, written atomically after
//! the scan's shard is complete. A sidecar whose fingerprint matches the
//! scan's current inputs, and whose shard on disk holds exactly the frames
//! it records (size, offsets and every CRC-32: what the index will say),
//! means the scan is done; anything else means "build it again".
//!
//! Reading every shard makes a no-op rerun cost a full read of the cache
//! (42 GB for LUNA), so the record also keeps the shard's stamp (inode,
//! size, change time) as sealed: a shard whose stamp is unchanged has not
//! been written, renamed or replaced since (the kernel sets the change
//! time; no user call can set it back), and only a changed stamp costs the
//! byte check.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared::cache::format::{shard_path, sidecar_path, ShardDirFile, SHARD_DIR};
use shared::cache::writer::path_to_index_string;
use shared::durable::write_atomically;

const SIDECAR_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    pub sidecar_version: u32,
    pub series_uid: String,
    pub fingerprint: String,
    pub input_bytes: u64,
    pub outcome: ScanOutcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanOutcome {
    /// One row per candidate of the scan, in canonical order.
    Built {
        shard_bytes: u64,
        /// The shard, relative to the cache dir as the index records it;
        /// records written before shards were named after their content
        /// have none and mean `shards/<uid>.zst`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<String>,
        /// The shard file as sealed; absent in older records (always
        /// byte-checked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stamp: Option<ShardStamp>,
        /// The shape of the shard's chunks where it is the scan's own
        /// (`prepcache seg`'s validation slices, `[8, H, W]`); absent when
        /// it is the cache's fixed crop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunk_shape: Option<[usize; 3]>,
        rows: Vec<Row>,
    },
    /// The scan could not be used at all (unreadable, truncated, too small).
    Failed { reason: String },
}

/// What the file system says of a shard file: equal stamps mean the file
/// was not touched in between.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub ctime_s: i64,
    pub ctime_ns: i64,
}

impl ShardStamp {
    pub fn of(path: &Path) -> Option<ShardStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).ok()?;
        Some(ShardStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            ctime_s: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub center_xyz: [f64; 3],
    pub is_nodule: bool,
    pub diameter_mm: f64,
    pub result: RowResult,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowResult {
    Stored {
        center_irc: [i32; 3],
        offset: u64,
        length: u32,
        crc32: u32,
    },
    Skipped {
        reason: String,
    },
}

impl Sidecar {
    pub fn new(
        series_uid: &str,
        fingerprint: &str,
        input_bytes: u64,
        outcome: ScanOutcome,
    ) -> Self {
        Sidecar {
            sidecar_version: SIDECAR_VERSION,
            series_uid: series_uid.to_owned(),
            fingerprint: fingerprint.to_owned(),
            input_bytes,
            outcome,
        }
    }

    pub fn write(&self, cache: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec(self)?;
        write_atomically(&cache.join(sidecar_path(&self.series_uid)), &json)?;
        Ok(())
    }

    /// The scan's sidecar if it is still valid for `fingerprint`; `None` for
    /// absent, unreadable, stale or inconsistent ones (all mean "rebuild"),
    /// and for one whose shard on disk is not the one it records (another
    /// build's, truncated, or with a changed byte).
    pub fn load_fresh(cache: &Path, series_uid: &str, fingerprint: &str) -> Option<Sidecar> {
        let sidecar = Self::load(cache, series_uid)?;
        if sidecar.fingerprint != fingerprint {
            return None;
        }
        if let ScanOutcome::Built {
            shard_bytes,
            rows,
            stamp,
            ..
        } = &sidecar.outcome
        {
            let path = cache.join(sidecar.shard_file()?);
            let untouched = stamp.is_some() && ShardStamp::of(&path) == *stamp;
            if !untouched && !frames_match(&fs::read(&path).ok()?, *shard_bytes, rows) {
                return None;
            }
        }
        Some(sidecar)
    }

    /// The scan's sidecar as recorded, whatever its fingerprint.
    pub fn load(cache: &Path, series_uid: &str) -> Option<Sidecar> {
        let bytes = fs::read(cache.join(sidecar_path(series_uid))).ok()?;
        let sidecar: Sidecar = serde_json::from_slice(&bytes).ok()?;
        (sidecar.sidecar_version == SIDECAR_VERSION && sidecar.series_uid == series_uid)
            .then_some(sidecar)
    }

    /// Where the scan's shard is, as the index records it; `None` for a
    /// failed scan, or a recorded path that is not a shard name in
    /// `shards/` (never trusted, never kept).
    pub fn shard_index_path(&self) -> Option<String> {
        let ScanOutcome::Built { shard, .. } = &self.outcome else {
            return None;
        };
        let path = match shard {
            Some(p) => p.clone(),
            None => path_to_index_string(&shard_path(&self.series_uid)),
        };
        let parts: Vec<Component> = Path::new(&path).components().collect();
        let valid = matches!(parts.as_slice(), [Component::Normal(dir), Component::Normal(name)]
            if *dir == SHARD_DIR
                && name.to_str().and_then(ShardDirFile::of) == Some(ShardDirFile::Shard));
        valid.then_some(path)
    }

    /// [`Self::shard_index_path`] as a path relative to the cache dir.
    pub fn shard_file(&self) -> Option<PathBuf> {
        self.shard_index_path().map(PathBuf::from)
    }

    /// Record where the finished shard went and its stamp there.
    pub fn set_shard(&mut self, cache: &Path, path: String) {
        if let ScanOutcome::Built { shard, stamp, .. } = &mut self.outcome {
            *stamp = ShardStamp::of(&cache.join(&path));
            *shard = Some(path);
        }
    }
}

/// `shard` is exactly `bytes` long and tiled by the stored rows' frames, in
/// order, each with its recorded CRC-32.
fn frames_match(shard: &[u8], bytes: u64, rows: &[Row]) -> bool {
    if shard.len() as u64 != bytes {
        return false;
    }
    let mut end = 0u64;
    for row in rows {
        if let RowResult::Stored {
            offset,
            length,
            crc32,
            ..
        } = &row.result
        {
            let next = offset + u64::from(*length);
            if *offset != end || next > bytes {
                return false;
            }
            if crc32fast::hash(&shard[*offset as usize..next as usize]) != *crc32 {
                return false;
            }
            end = next;
        }
    }
    end == bytes
}
