//! One scan: open it once (mapped in place when its layout allows, else
//! decoded), crop and compress its candidates in parallel, write its shard,
//! and hand back the unsynced shard with its sidecar ([`PendingScan`]).
//!
//! Mapping instead of decoding took the synthetic luna preset (4 scans,
//! 2319 candidates) from 1.62 to 1.05 s on one thread and 0.77 to 0.62 s on
//! two; what is left is mostly zstd.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;
use rayon::prelude::*;
use shared::cache::writer::ShardWriter;
use shared::cache::ChunkEncoder;
use shared::crop::{crop_candidate, CropError, CROP_SHAPE, CROP_VOXELS};
use shared::ct_geometry::check_ct_geometry;
use shared::luna::CandidateInfo;
use shared::volume::{Scan, VoxelSource};

use super::plan::{ChunkParams, ScanPlan};
use super::sidecar::{Row, RowResult, ScanOutcome, Sidecar};

/// Candidates per parallel task: enough to amortise a zstd context.
const CANDIDATES_PER_TASK: usize = 16;
/// Candidates cropped before their frames are written (~80 KB each): small
/// enough to bound memory, large enough to keep every worker busy.
const CANDIDATES_PER_BATCH: usize = 1024;

enum Chunk {
    Stored {
        center_irc: [i32; 3],
        frame: Vec<u8>,
    },
    Skipped(String),
}

/// Decode buffers of scans that could not be mapped, handed to the next such
/// scan: faulting in a fresh 150 MB buffer costs more than reading the file.
#[derive(Default)]
pub struct SpareBuffers(Mutex<Vec<Vec<i16>>>);

impl SpareBuffers {
    fn take(&self) -> Vec<i16> {
        self.lock().pop().unwrap_or_default()
    }

    fn give(&self, scan: Scan) {
        if let Some(buffer) = scan.into_buffer() {
            self.lock().push(buffer);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<i16>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A scan whose chunks are written but not yet durable.
pub struct PendingScan {
    shard: Option<ShardWriter>,
    sidecar: Sidecar,
}

impl PendingScan {
    pub fn series_uid(&self) -> &str {
        &self.sidecar.series_uid
    }

    /// fsync and rename the shard, then write the sidecar that marks the scan
    /// done, in that order, so no crash leaves a sidecar naming a lost shard.
    /// Kept off the worker threads: a build of 8 LUNA-size scans spent
    /// ~0.18 s of its ~1.3 s blocked in 36 fsyncs (strace), cores idle.
    pub fn seal(mut self, cache: &Path) -> Result<Sidecar> {
        if let Some(shard) = self.shard {
            let finished = shard.finish_named()?;
            self.sidecar.set_shard(cache, finished.path);
        }
        self.sidecar.write(cache)?;
        Ok(self.sidecar)
    }
}

/// Build `plan`'s shard under `cache`. A scan that cannot be used becomes a
/// `Failed` sidecar (the build goes on); only errors writing the cache are
/// returned as `Err`. `progress` is called once per candidate handled.
pub fn build_scan(
    plan: &ScanPlan,
    cache: &Path,
    params: &ChunkParams,
    spares: &SpareBuffers,
    progress: &(dyn Fn() + Sync),
) -> Result<PendingScan> {
    let failed = |reason: String| {
        for _ in &plan.candidates {
            progress();
        }
        Ok(PendingScan {
            shard: None,
            sidecar: Sidecar::new(
                &plan.uid,
                &plan.fingerprint,
                plan.input_bytes,
                ScanOutcome::Failed { reason },
            ),
        })
    };
    let volume = match plan.source.open_reusing(spares.take()) {
        Ok(v) => v,
        Err(e) => return failed(e.to_string()),
    };
    // A geometry no CT has (spacing 1e308, origin 1e12 mm) maps candidates
    // to nonsense voxels under their CSV labels: the scan is unusable.
    if let Err(e) = check_ct_geometry(volume.geometry()) {
        spares.give(volume);
        return failed(format!("{}: {e}", plan.source.path().display()));
    }
    let written = match too_small(&volume) {
        Some(reason) => Err(Unusable(reason)),
        None => write_chunks(&volume, plan, cache, params, progress),
    };
    spares.give(volume);
    let (shard, rows) = match written {
        Ok(w) => w,
        Err(WriteError::Unusable(reason)) => {
            return failed(format!("{}: {reason}", plan.source.path().display()))
        }
        Err(WriteError::Cache(e)) => return Err(e),
    };
    let shard_bytes = shard.bytes_written();
    Ok(PendingScan {
        shard: Some(shard),
        sidecar: Sidecar::new(
            &plan.uid,
            &plan.fingerprint,
            plan.input_bytes,
            ScanOutcome::Built {
                shard_bytes,
                shard: None,
                stamp: None,
                chunk_shape: None,
                rows,
            },
        ),
    })
}

fn too_small(volume: &Scan) -> Option<String> {
    let shape = volume.shape();
    let small = (0..3).any(|a| shape[a] < CROP_SHAPE[a]);
    small.then(|| {
        format!(
            "volume of shape {shape:?} (i, r, c) is smaller than the crop {CROP_SHAPE:?}; no candidate fits"
        )
    })
}

/// Why a scan's chunks were not written.
enum WriteError {
    /// The scan as a whole cannot be used (e.g. singular direction matrix):
    /// it becomes a `Failed` sidecar and the build goes on.
    Unusable(String),
    /// Writing the cache failed: the build stops.
    Cache(anyhow::Error),
}
use WriteError::Unusable;

/// Crops, compresses and appends `plan`'s candidates in their order,
/// [`CANDIDATES_PER_BATCH`] at a time, so memory holds one batch of frames
/// whatever the candidate count: a V2-style list with 94,000 candidates on one
/// scan held all its frames at once and grew to 21 GB before this.
fn write_chunks(
    volume: &Scan,
    plan: &ScanPlan,
    cache: &Path,
    params: &ChunkParams,
    progress: &(dyn Fn() + Sync),
) -> Result<(ShardWriter, Vec<Row>), WriteError> {
    // Named after its content: the shard the current index uses (if the
    // scan changed) stays as it is until the new manifest replaces it.
    let mut shard = ShardWriter::create_content_named(cache, &plan.uid)
        .map_err(|e| WriteError::Cache(e.into()))?;
    let mut rows = Vec::with_capacity(plan.candidates.len());
    for batch in plan.candidates.chunks(CANDIDATES_PER_BATCH) {
        // A failure drops `shard`, which removes its temporary file.
        let chunks = crop_and_encode(volume, batch, params, progress).map_err(Unusable)?;
        for (c, chunk) in batch.iter().zip(chunks) {
            let result = match chunk {
                Chunk::Stored { center_irc, frame } => {
                    let s = shard
                        .append(&frame)
                        .map_err(|e| WriteError::Cache(e.into()))?;
                    RowResult::Stored {
                        center_irc,
                        offset: s.offset,
                        length: s.length,
                        crc32: s.crc32,
                    }
                }
                Chunk::Skipped(reason) => RowResult::Skipped { reason },
            };
            rows.push(Row {
                center_xyz: c.center_xyz,
                is_nodule: c.is_nodule,
                diameter_mm: c.diameter_mm,
                result,
            });
        }
    }
    Ok((shard, rows))
}

/// Err: the scan as a whole is unusable (e.g. singular direction matrix).
fn crop_and_encode(
    volume: &Scan,
    candidates: &[CandidateInfo],
    params: &ChunkParams,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Chunk>, String> {
    candidates
        .par_iter()
        .with_min_len(CANDIDATES_PER_TASK)
        .map_init(
            || {
                (
                    ChunkEncoder::new(params.codec, CROP_VOXELS),
                    vec![0i16; CROP_VOXELS],
                )
            },
            |(encoder, buf), c| {
                let encoder = encoder.as_mut().map_err(|e| e.to_string())?;
                let chunk = one_chunk(volume, c.center_xyz, encoder, buf);
                progress();
                chunk
            },
        )
        .collect()
}

fn one_chunk(
    volume: &Scan,
    xyz: [f64; 3],
    encoder: &mut ChunkEncoder,
    buf: &mut [i16],
) -> Result<Chunk, String> {
    let irc = volume
        .geometry()
        .xyz_to_irc(xyz)
        .map_err(|e| e.to_string())?;
    match crop_candidate(volume, irc, buf) {
        Ok(_) => {}
        Err(e @ CropError::CenterOutside { .. }) => return Ok(Chunk::Skipped(e.to_string())),
        Err(e) => return Err(e.to_string()),
    }
    // Inside the volume, so each index fits i32 (volumes are far smaller).
    let center_irc = irc.map(|v| v as i32);
    let frame = encoder.encode(buf).map_err(|e| e.to_string())?.to_vec();
    Ok(Chunk::Stored { center_irc, frame })
}
