//! What `prepcache seg` prints at the end: counts on stdout, what was left
//! out on stderr (the first few; the manifests list all).

use shared::cache::Manifest;
use shared::cache::Skipped;
use shared::seg::{NO_POSITIVE_REASON, TRAIN_DIR, VAL_DIR};

use super::{without_positives, SegReport};

/// Skipped rows named on the terminal; the rest are in the manifests.
const SKIPPED_SHOWN: usize = 10;

pub fn print_summary(report: &SegReport) {
    let (train, val) = (&report.manifests.train, &report.manifests.val);
    println!(
        "{}: {} series ({} built now, {} reused; {} training, {} validation written)",
        report.out.display(),
        report.series,
        report.built,
        report.reused,
        train.series,
        val.series,
    );
    print_sub_cache(TRAIN_DIR, train, "training crops");
    print_sub_cache(VAL_DIR, val, "validation slices");
    let secs = report.wall.as_secs_f64().max(1e-3);
    println!(
        "  {:.1} MB of scans read in {:.2} s ({:.0} MB/s); {:.1} MB in the cache",
        report.bytes_in as f64 / 1e6,
        secs,
        report.bytes_in as f64 / 1e6 / secs,
        (train.stored_bytes + train.index_bytes + val.stored_bytes + val.index_bytes) as f64 / 1e6,
    );
    print_left_out(report);
}

/// An unchanged data folder: what the cache holds, and that nothing ran.
pub fn print_up_to_date(report: &SegReport) {
    let (train, val) = (&report.manifests.train, &report.manifests.val);
    println!(
        "{}: up to date ({} series: {} training crops, {} validation slices); nothing to do",
        report.out.display(),
        report.series,
        train.candidates,
        val.candidates,
    );
    print_left_out(report);
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

/// Counts of what was left out, then the first few named, on stderr; a
/// `seg-train` with nothing in it is a warning of its own.
fn print_left_out(report: &SegReport) {
    let (train, val) = (&report.manifests.train, &report.manifests.val);
    let no_positive = without_positives(train);
    let skipped: Vec<&Skipped> = train
        .skipped
        .iter()
        .chain(&val.skipped)
        .filter(|s| s.reason != NO_POSITIVE_REASON)
        .collect();
    let series = skipped.iter().filter(|s| s.center_xyz.is_none()).count();
    println!(
        "  left out: {no_positive} training series without a positive candidate (no crops), \
         {series} unusable series, {} positives",
        skipped.len() - series
    );
    if train.candidates == 0 {
        eprintln!(
            "warning: {}/{TRAIN_DIR} holds no training crop: every positive of the training \
             series was left out (see \"skipped\" in its manifest.json); train seg needs at \
             least one, so fix or add the scans",
            report.out.display()
        );
    }
    print_skipped(&skipped);
}

/// Name the first few skipped series and positives.
fn print_skipped(skipped: &[&Skipped]) {
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

/// A `--shard` run's share, and what is left to do.
pub fn print_share(r: &super::ShareReport) {
    println!(
        "{}: shard {} done: {} of the {} series are this shard's ({} built now, {} reused), \
         {:.1} MB read in {:.2} s",
        r.out.display(),
        r.shard,
        r.mine,
        r.series,
        r.built,
        r.reused,
        r.bytes_in as f64 / 1e6,
        r.wall.as_secs_f64()
    );
    println!("{}", crate::shard::NOT_SEALED);
}
