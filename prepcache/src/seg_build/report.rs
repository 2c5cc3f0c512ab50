//! The summary `prepcache seg` prints at the end.

use shared::cache::Manifest;
use shared::cache::Skipped;
use shared::seg::{TRAIN_DIR, VAL_DIR};

use super::SegReport;

/// Skipped rows named on the terminal; the rest are in the manifests.
const SKIPPED_SHOWN: usize = 10;

pub fn print_summary(report: &SegReport) {
    let (train, val) = (&report.manifests.train, &report.manifests.val);
    let skipped = train.skipped.iter().chain(&val.skipped);
    let skipped_series = skipped.clone().filter(|s| s.center_xyz.is_none()).count();
    let skipped_positives = skipped.clone().count() - skipped_series;
    let secs = report.wall.as_secs_f64().max(1e-3);
    println!(
        "{}: {} series ({} training, {} validation written), {} skipped series, {} skipped positives",
        report.out.display(),
        report.series,
        train.series,
        val.series,
        skipped_series,
        skipped_positives,
    );
    print_sub_cache(TRAIN_DIR, train, "training crops");
    print_sub_cache(VAL_DIR, val, "validation slices");
    println!(
        "  {:.1} MB of scans read in {:.2} s ({:.0} MB/s); {:.1} MB written",
        report.bytes_in as f64 / 1e6,
        secs,
        report.bytes_in as f64 / 1e6 / secs,
        (train.stored_bytes + train.index_bytes + val.stored_bytes + val.index_bytes) as f64 / 1e6,
    );
    print_skipped(skipped.collect());
}

fn print_sub_cache(dir: &str, m: &Manifest, what: &str) {
    let ratio = m.raw_bytes as f64 / m.stored_bytes.max(1) as f64;
    println!(
        "  {dir}/: {} {what} of {:?} ({} with nodule pixels), {:.1} MB ({:.2}x smaller than raw)",
        m.candidates,
        m.crop_shape,
        m.positives,
        m.stored_bytes as f64 / 1e6,
        ratio,
    );
}

/// Name the first few skipped series and positives, on stderr.
fn print_skipped(skipped: Vec<&Skipped>) {
    for s in skipped.iter().take(SKIPPED_SHOWN) {
        match s.center_xyz {
            None => eprintln!("skipped series {}: {}", s.series_uid, s.reason),
            Some(xyz) => eprintln!(
                "skipped positive {} at {xyz:?} mm: {}",
                s.series_uid, s.reason
            ),
        }
    }
    if skipped.len() > SKIPPED_SHOWN {
        eprintln!(
            "... and {} more (each sub-cache's manifest.json lists its own under \"skipped\")",
            skipped.len() - SKIPPED_SHOWN
        );
    }
}
