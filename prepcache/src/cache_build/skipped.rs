//! `skipped.csv`: every candidate row of the CSV that is not in the cache
//! (scan not on disk, unusable scan, centre outside the volume), with its
//! line and why, and the few of them the end of a build shows.

use std::path::{Path, PathBuf};

use anyhow::Result;
use shared::cache::CacheDir;
use shared::csv_write::field;
use shared::luna::CandidateList;

use super::assemble::{fates, Fate};
use super::reuse::Done;
use super::sidecar::{Row, RowResult};

/// One candidate row of the CSV that is not in the cache.
pub struct SkippedRow<'a> {
    uid: &'a str,
    line: u64,
    reason: &'a str,
}

const NOT_ON_DISK: &str =
    "scan not found on disk (no subset*/<seriesuid>.mhd and no DICOM series of that UID in the data folder)";

/// Every candidate row left out, in CSV line order: rows of scans not on
/// disk, every row of an unusable scan, and rows whose centre is outside
/// their volume.
pub fn skipped_rows<'a>(
    list: &'a CandidateList,
    sidecars: &'a Done,
) -> Result<Vec<SkippedRow<'a>>> {
    let mut rows: Vec<SkippedRow> = list
        .missing
        .iter()
        .map(|m| SkippedRow {
            uid: &m.series_uid,
            line: m.line,
            reason: NOT_ON_DISK,
        })
        .collect();
    for (c, fate) in list
        .candidates
        .iter()
        .zip(fates(&list.candidates, sidecars)?)
    {
        let reason = match fate {
            Fate::ScanFailed(reason) => reason,
            Fate::Row(Row {
                result: RowResult::Skipped { reason },
                ..
            }) => reason,
            Fate::Row(_) => continue,
        };
        rows.push(SkippedRow {
            uid: &c.series_uid,
            line: c.line,
            reason,
        });
    }
    rows.sort_by_key(|r| r.line);
    Ok(rows)
}

/// Write `CACHE/skipped.csv` (`seriesuid,csv,line,reason`; the header alone
/// when nothing was left out).
pub fn write_skipped(dir: &CacheDir, csv: &Path, rows: &[SkippedRow]) -> Result<PathBuf> {
    let csv_name = csv.to_string_lossy();
    let csv_name = field(&csv_name);
    let mut text = String::from("seriesuid,csv,line,reason\n");
    for r in rows {
        text.push_str(&field(r.uid));
        text.push(',');
        text.push_str(&csv_name);
        text.push(',');
        text.push_str(&r.line.to_string());
        text.push(',');
        text.push_str(&field(r.reason));
        text.push('\n');
    }
    Ok(dir.write_skipped_list(text.as_bytes())?)
}

/// How many skipped rows the end of a build shows; the rest are in the file.
const SKIPPED_SHOWN: usize = 5;

pub fn print_skipped(skipped_csv: &Path, csv: &Path, rows: &[SkippedRow]) {
    if rows.is_empty() {
        println!(
            "  not cached  0 rows of {} ({} lists none)",
            csv.display(),
            skipped_csv.display()
        );
        return;
    }
    println!(
        "  not cached  {} row(s) of {}, all listed in {}{}",
        rows.len(),
        csv.display(),
        skipped_csv.display(),
        if rows.len() > SKIPPED_SHOWN {
            format!("; the first {SKIPPED_SHOWN}:")
        } else {
            ":".to_owned()
        }
    );
    for r in rows.iter().take(SKIPPED_SHOWN) {
        println!("    line {}: {}: {}", r.line, r.uid, r.reason);
    }
}
