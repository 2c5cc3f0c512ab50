//! `prepcache info` and `prepcache ls`.

use std::io::{self, Write};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use shared::cache::CacheReader;

pub fn info(dir: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let cache = CacheReader::open(dir)?;
    let m = cache.manifest();
    if json {
        serde_json::to_writer_pretty(&mut *out, m)?;
        writeln!(out)?;
        return Ok(());
    }
    let ratio = m.raw_bytes as f64 / m.stored_bytes.max(1) as f64;
    writeln!(out, "cache        {}", dir.display())?;
    writeln!(
        out,
        "format       version {} (written by {})",
        m.format_version, m.tool
    )?;
    writeln!(
        out,
        "chunks       {:?} {} (i, r, c), HU clipped to {:?}",
        m.crop_shape, m.dtype, m.clip_hu
    )?;
    writeln!(out, "codec        {}", m.codec)?;
    writeln!(
        out,
        "candidates   {} ({} positive, {} negative)",
        m.candidates,
        m.positives,
        m.candidates - m.positives
    )?;
    writeln!(out, "series       {} in {} shards", m.series, m.shards)?;
    writeln!(
        out,
        "size         {:.1} MB stored, {:.1} MB as int16 (ratio {ratio:.2}), index {:.1} KB",
        m.stored_bytes as f64 / 1e6,
        m.raw_bytes as f64 / 1e6,
        m.index_bytes as f64 / 1e3
    )?;
    let unusable = m.skipped.iter().filter(|s| s.center_xyz.is_none()).count();
    writeln!(
        out,
        "skipped      {} unusable scans, {} candidates outside their volume",
        unusable,
        m.skipped.len() - unusable
    )?;
    if m.missing_series > 0 {
        writeln!(
            out,
            "not on disk  {} series ({} candidates)",
            m.missing_series, m.missing_candidates
        )?;
    }
    writeln!(out, "fingerprint  {}", m.fingerprint)?;
    Ok(())
}

#[derive(Serialize)]
struct Listed<'a> {
    index: usize,
    series_uid: &'a str,
    is_nodule: bool,
    diameter_mm: f64,
    center_xyz: [f64; 3],
    center_irc: [i32; 3],
    shard: u32,
    offset: u64,
    length: u32,
    crc32: u32,
}

/// One line per candidate in canonical order (JSON Lines with `--json`).
pub fn ls(dir: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let cache = CacheReader::open(dir)?;
    if !json {
        writeln!(
            out,
            "index\tseries_uid\tis_nodule\tdiameter_mm\tcenter_xyz\tcenter_irc\tbytes"
        )?;
    }
    for (index, e) in cache.entries().iter().enumerate() {
        let uid = cache.series_uid(e.series);
        if json {
            let row = Listed {
                index,
                series_uid: uid,
                is_nodule: e.is_nodule,
                diameter_mm: e.diameter_mm,
                center_xyz: e.center_xyz,
                center_irc: e.center_irc,
                shard: e.shard,
                offset: e.offset,
                length: e.length,
                crc32: e.crc32,
            };
            serde_json::to_writer(&mut *out, &row).map_err(io::Error::from)?;
            writeln!(out)?;
        } else {
            let [x, y, z] = e.center_xyz;
            let [i, r, c] = e.center_irc;
            writeln!(
                out,
                "{index}\t{uid}\t{}\t{}\t{x},{y},{z}\t{i},{r},{c}\t{}",
                u8::from(e.is_nodule),
                e.diameter_mm,
                e.length
            )?;
        }
    }
    Ok(())
}
