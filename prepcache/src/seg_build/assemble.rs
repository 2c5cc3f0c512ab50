//! Merge a sub-cache's per-series records into its index contents, in its
//! order ([`order_entries`]), with what was left out. Records are read in
//! uid order, so the result depends only on them, never on the order the
//! series were built in or on which run built them.

use std::collections::BTreeMap;

use anyhow::Result;
use shared::cache::writer::CacheContents;
use shared::cache::{Codec, Entry, Skipped};
use shared::luna::CandidateList;
use shared::seg::{
    order_entries, val_shape_reason, Role, EMPTY_VAL_SHAPE, LAYOUT_TAG, NO_POSITIVE_REASON,
    TRAIN_CHUNK_SHAPE,
};

use crate::cache_build::assemble::shard_tables;
use crate::cache_build::reuse::Done;
use crate::cache_build::sidecar::{RowResult, ScanOutcome, Sidecar};

use super::TOOL;

/// The sub-cache of `role` from its records (`done`: this role's only).
pub(super) fn assemble(
    role: Role,
    done: &Done,
    list: &CandidateList,
    codec: Codec,
    fingerprint: &str,
) -> Result<CacheContents> {
    let records: BTreeMap<&str, &Sidecar> = done.iter().map(|(u, s)| (u.as_str(), s)).collect();
    let crop_shape = match role {
        Role::Train => TRAIN_CHUNK_SHAPE,
        // The first series written fixes it, as SegCacheWriter's does.
        Role::Val => records
            .values()
            .find_map(|s| built_shape(s))
            .unwrap_or(EMPTY_VAL_SHAPE),
    };
    let mut skipped = Vec::new();
    let mut kept = Done::new();
    for (uid, record) in &records {
        skipped.extend(left_out(role, record));
        match built_shape(record) {
            Some(shape) if shape != crop_shape => {
                let ScanOutcome::Built { rows, .. } = &record.outcome else {
                    continue;
                };
                let volume = [rows.len(), shape[1], shape[2]];
                skipped.push(series_skipped(uid, val_shape_reason(volume, crop_shape)));
            }
            _ => {
                kept.insert((*uid).to_owned(), (*record).clone());
            }
        }
    }
    let tables = shard_tables(&kept)?;
    let mut entries = Vec::new();
    for (uid, &n) in &tables.number {
        entries.extend(stored_entries(&kept[*uid], n));
    }
    order_entries(role, &tables.series, &mut entries);
    Ok(CacheContents {
        tool: format!("{TOOL}; {LAYOUT_TAG}"),
        codec,
        crop_shape,
        series: tables.series,
        shards: tables.shards,
        entries,
        skipped,
        missing_series: list.missing_series,
        missing_candidates: list.missing_candidates,
        inputs_fingerprint: fingerprint.to_owned(),
    })
}

/// The chunk shape of a series that was written.
fn built_shape(record: &Sidecar) -> Option<[usize; 3]> {
    match &record.outcome {
        ScanOutcome::Built { chunk_shape, .. } => *chunk_shape,
        ScanOutcome::Failed { .. } => None,
    }
}

/// What a record says was left out: the whole series (unreadable, or a
/// training series without positives) or some of its positives.
fn left_out(role: Role, record: &Sidecar) -> Vec<Skipped> {
    let uid = &record.series_uid;
    match &record.outcome {
        ScanOutcome::Failed { reason } => vec![series_skipped(uid, reason.clone())],
        ScanOutcome::Built { rows, .. } if rows.is_empty() && role == Role::Train => {
            vec![series_skipped(uid, NO_POSITIVE_REASON.to_owned())]
        }
        ScanOutcome::Built { rows, .. } => rows
            .iter()
            .filter_map(|r| match &r.result {
                RowResult::Skipped { reason } => Some(Skipped {
                    series_uid: uid.clone(),
                    center_xyz: Some(r.center_xyz),
                    reason: reason.clone(),
                }),
                RowResult::Stored { .. } => None,
            })
            .collect(),
    }
}

fn series_skipped(uid: &str, reason: String) -> Skipped {
    Skipped {
        series_uid: uid.to_owned(),
        center_xyz: None,
        reason,
    }
}

/// A record's stored rows as index entries of series and shard `n`.
fn stored_entries(record: &Sidecar, n: u32) -> Vec<Entry> {
    let ScanOutcome::Built { rows, .. } = &record.outcome else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|r| match r.result {
            RowResult::Stored {
                center_irc,
                offset,
                length,
                crc32,
            } => Some(Entry {
                series: n,
                center_xyz: r.center_xyz,
                center_irc,
                is_nodule: r.is_nodule,
                diameter_mm: r.diameter_mm,
                shard: n,
                offset,
                length,
                crc32,
            }),
            RowResult::Skipped { .. } => None,
        })
        .collect()
}
