//! One series: read its scan, write its chunks into a content-named shard
//! of its sub-cache, then its resume record (the classifier's
//! [`Sidecar`], in that order, so no crash leaves a record naming a shard
//! that is not complete and durable.
//!
//! A scan that cannot be used is recorded as `Failed` (a rerun does not
//! retry it until its files change); a training series with no positive
//! is recorded without reading its scan (it has nothing to contribute),
//! with an empty shard so its record is checked like any other.

use std::path::Path;

use anyhow::{Context, Result};
use shared::cache::writer::ShardWriter;
use shared::cache::ChunkEncoder;
use shared::ct_geometry::check_ct_geometry;
use shared::scan_source::ScanSource;
use shared::seg::{Role, SegSeries, SeriesItem, SeriesSamples};
use shared::volume::Volume;

use crate::cache_build::sidecar::{Row, RowResult, ScanOutcome, Sidecar};

use super::plan::SegPlan;

/// Build `plan`'s shard and record under `cache` (its sub-cache); only
/// errors writing the cache are `Err`.
pub(super) fn build_series(
    plan: &SegPlan,
    cache: &Path,
    codec: shared::cache::Codec,
) -> Result<Sidecar> {
    let scan = &plan.scan;
    if plan.role == Role::Train && plan.positives.is_empty() {
        return write_shard(plan, cache, codec, None, 0);
    }
    let record = match open(&scan.source) {
        Err(reason) => Sidecar::new(
            &scan.uid,
            &scan.fingerprint,
            scan.input_bytes,
            ScanOutcome::Failed { reason },
        ),
        Ok(volume) if volume.shape[0] == 0 => Sidecar::new(
            &scan.uid,
            &scan.fingerprint,
            scan.input_bytes,
            ScanOutcome::Failed {
                reason: format!("{}: the volume has no slices", scan.source.path().display()),
            },
        ),
        Ok(volume) => {
            let series = SegSeries {
                uid: scan.uid.clone(),
                volume,
                positives: plan.positives.clone(),
            };
            return write_shard(plan, cache, codec, Some(&series), scan.input_bytes);
        }
    };
    record.write(cache)?;
    Ok(record)
}

/// Read a scan and refuse a geometry no CT has: it would put the
/// positives' masks at nonsense voxels (as `build` refuses it).
fn open(source: &ScanSource) -> Result<Volume, String> {
    let volume = source.read_volume().map_err(|e| e.to_string())?;
    check_ct_geometry(&volume.geometry).map_err(|e| format!("{}: {e}", source.path().display()))?;
    Ok(volume)
}

/// Encode `series`' items (none: an empty shard) into a content-named
/// shard, make it durable, then write the record naming it.
fn write_shard(
    plan: &SegPlan,
    cache: &Path,
    codec: shared::cache::Codec,
    series: Option<&SegSeries>,
    input_bytes: u64,
) -> Result<Sidecar> {
    let uid = &plan.scan.uid;
    let mut shard = ShardWriter::create_content_named(cache, uid)?;
    let samples = series.map(|s| SeriesSamples::new(s, plan.role));
    let chunk_shape = samples.as_ref().map(SeriesSamples::chunk_shape);
    let mut rows = Vec::new();
    if let (Some(samples), Some(shape)) = (&samples, chunk_shape) {
        let mut encoder = ChunkEncoder::new(codec, shape.iter().product())
            .with_context(|| format!("{}: chunks of {shape:?}", shard.path().display()))?;
        for item in samples.items() {
            rows.push(match item? {
                SeriesItem::Chunk { meta, voxels } => {
                    let frame = encoder
                        .encode(&voxels)
                        .with_context(|| format!("compressing into {}", shard.path().display()))?;
                    let stored = shard.append(frame)?;
                    Row {
                        center_xyz: meta.center_xyz,
                        is_nodule: meta.is_nodule,
                        diameter_mm: meta.diameter_mm,
                        result: RowResult::Stored {
                            center_irc: meta.center_irc,
                            offset: stored.offset,
                            length: stored.length,
                            crc32: stored.crc32,
                        },
                    }
                }
                SeriesItem::Skipped { positive, reason } => Row {
                    center_xyz: positive.center_xyz,
                    is_nodule: true,
                    diameter_mm: positive.diameter_mm,
                    result: RowResult::Skipped { reason },
                },
            });
        }
    }
    let finished = shard.finish_named()?;
    let mut record = Sidecar::new(
        uid,
        &plan.scan.fingerprint,
        input_bytes,
        ScanOutcome::Built {
            shard_bytes: finished.bytes,
            shard: None,
            stamp: None,
            chunk_shape,
            rows,
        },
    );
    record.set_shard(cache, finished.path);
    record.write(cache)?;
    Ok(record)
}
