//! The per-scan resume record, `shards/<uid>.json`, written atomically after
//! the scan's shard is complete. A sidecar whose fingerprint matches the
//! scan's current inputs (and whose shard has the recorded size) means the
//! scan is done; anything else means "build it again".

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use shared::cache::format::{shard_path, sidecar_path};
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
    Built { shard_bytes: u64, rows: Vec<Row> },
    /// The scan could not be used at all (unreadable, truncated, too small).
    Failed { reason: String },
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
    /// absent, unreadable, stale or inconsistent ones (all mean "rebuild").
    pub fn load_fresh(cache: &Path, series_uid: &str, fingerprint: &str) -> Option<Sidecar> {
        let bytes = fs::read(cache.join(sidecar_path(series_uid))).ok()?;
        let sidecar: Sidecar = serde_json::from_slice(&bytes).ok()?;
        if sidecar.sidecar_version != SIDECAR_VERSION
            || sidecar.series_uid != series_uid
            || sidecar.fingerprint != fingerprint
        {
            return None;
        }
        if let ScanOutcome::Built { shard_bytes, .. } = &sidecar.outcome {
            let size = fs::metadata(cache.join(shard_path(series_uid))).ok()?.len();
            if size != *shard_bytes {
                return None;
            }
        }
        Some(sidecar)
    }
}
