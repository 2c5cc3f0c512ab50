//! Step 6, assemble: merge the per-scan records into the index contents,
//! in the candidate list's (canonical) order, for [`CacheDir::seal`].
//!
//! [`CacheDir::seal`]: shared::cache::CacheDir::seal

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};
use shared::cache::writer::CacheContents;
use shared::cache::{Codec, Entry, ShardInfo, Skipped};
use shared::crop::CROP_SHAPE;
use shared::luna::{CandidateInfo, CandidateList};

use super::reuse::Done;
use super::sidecar::{Row, RowResult, ScanOutcome};
use super::TOOL;

/// What a candidate's build record says about it.
pub enum Fate<'a> {
    /// Its whole scan could not be used.
    ScanFailed(&'a str),
    Row(&'a Row),
}

/// Each candidate's [`Fate`], in the candidate list's (canonical) order:
/// each scan's rows are that scan's candidates in the same order, so a
/// cursor per scan pairs them up.
pub fn fates<'a>(candidates: &[CandidateInfo], sidecars: &'a Done) -> Result<Vec<Fate<'a>>> {
    let mut cursor: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        let uid = c.series_uid.as_str();
        let Some(sc) = sidecars.get(uid) else {
            bail!("internal error: no build record for scan {uid}");
        };
        let rows = match &sc.outcome {
            ScanOutcome::Failed { reason } => {
                out.push(Fate::ScanFailed(reason));
                continue;
            }
            ScanOutcome::Built { rows, .. } => rows,
        };
        let k = cursor.entry(uid).or_insert(0);
        let Some(row) = rows.get(*k) else {
            bail!("internal error: build record of scan {uid} has fewer rows than its candidates");
        };
        *k += 1;
        if row.center_xyz != c.center_xyz || row.is_nodule != c.is_nodule {
            bail!("internal error: build record of scan {uid} does not match its candidates");
        }
        out.push(Fate::Row(row));
    }
    Ok(out)
}

/// The index's contents: series and shard tables, one entry per stored
/// candidate, and what was left out.
pub fn assemble(
    list: &CandidateList,
    sidecars: &Done,
    codec: Codec,
    inputs_fingerprint: String,
) -> Result<CacheContents> {
    let tables = shard_tables(sidecars)?;
    let (entries, skipped) = entries(&list.candidates, sidecars, &tables.number)?;
    Ok(CacheContents {
        tool: TOOL.to_owned(),
        codec,
        crop_shape: CROP_SHAPE,
        series: tables.series,
        shards: tables.shards,
        entries,
        skipped,
        missing_series: list.missing_series,
        missing_candidates: list.missing_candidates,
        inputs_fingerprint,
    })
}

/// One series and one shard per scan that stored a candidate, in uid order;
/// a scan's series and shard share its number.
pub(crate) struct Tables<'a> {
    pub series: Vec<String>,
    pub shards: Vec<ShardInfo>,
    pub number: BTreeMap<&'a str, u32>,
}

pub(crate) fn shard_tables(sidecars: &Done) -> Result<Tables<'_>> {
    let mut t = Tables {
        series: Vec::new(),
        shards: Vec::new(),
        number: BTreeMap::new(),
    };
    let mut uids: Vec<&String> = sidecars.keys().collect();
    uids.sort();
    for uid in uids {
        let sidecar = &sidecars[uid];
        let ScanOutcome::Built {
            shard_bytes, rows, ..
        } = &sidecar.outcome
        else {
            continue;
        };
        if !rows
            .iter()
            .any(|r| matches!(r.result, RowResult::Stored { .. }))
        {
            continue;
        }
        let Some(path) = sidecar.shard_index_path() else {
            bail!("internal error: build record of scan {uid} names no shard");
        };
        t.number.insert(uid, t.series.len() as u32);
        t.series.push(uid.clone());
        t.shards.push(ShardInfo {
            path,
            bytes: *shard_bytes,
        });
    }
    Ok(t)
}

/// The index entries in canonical order, and what was left out: one
/// [`Skipped`] per unusable scan, one per candidate outside its volume.
fn entries(
    candidates: &[CandidateInfo],
    sidecars: &Done,
    number: &BTreeMap<&str, u32>,
) -> Result<(Vec<Entry>, Vec<Skipped>)> {
    let mut entries = Vec::with_capacity(candidates.len());
    let mut skipped = Vec::new();
    let mut failed_reported: Vec<&str> = Vec::new();
    for (c, fate) in candidates.iter().zip(fates(candidates, sidecars)?) {
        let uid = c.series_uid.as_str();
        let row = match fate {
            Fate::ScanFailed(reason) => {
                if !failed_reported.contains(&uid) {
                    failed_reported.push(uid);
                    skipped.push(Skipped {
                        series_uid: uid.to_owned(),
                        center_xyz: None,
                        reason: reason.to_owned(),
                    });
                }
                continue;
            }
            Fate::Row(row) => row,
        };
        match &row.result {
            RowResult::Stored {
                center_irc,
                offset,
                length,
                crc32,
            } => {
                let n = number[uid];
                entries.push(Entry {
                    series: n,
                    center_xyz: c.center_xyz,
                    center_irc: *center_irc,
                    is_nodule: c.is_nodule,
                    diameter_mm: c.diameter_mm,
                    shard: n,
                    offset: *offset,
                    length: *length,
                    crc32: *crc32,
                });
            }
            RowResult::Skipped { reason } => skipped.push(Skipped {
                series_uid: uid.to_owned(),
                center_xyz: Some(c.center_xyz),
                reason: reason.clone(),
            }),
        }
    }
    Ok((entries, skipped))
}
