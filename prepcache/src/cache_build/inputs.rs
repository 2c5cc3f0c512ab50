//! Step 1, discover: the scans on disk, the candidates CSV and
//! annotations.csv, and the candidate list they make. `--strict` refuses a
//! CSV row whose scan is not on disk here, before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shared::luna::{
    build_candidate_list, read_annotations_csv, read_candidates_csv_lines, CandidateList,
};
use shared::scan_source::{find_scans, ScanSource};

use super::BuildOptions;

/// Where the scans and CSVs are: the options `build` and `seg` share.
pub(crate) struct Sources<'a> {
    pub data: &'a Path,
    /// `--candidates`, else the first of [`CANDIDATES_DEFAULTS`] found.
    pub candidates: Option<&'a Path>,
    /// `--annotations`, else `DATA/annotations.csv`.
    pub annotations: Option<&'a Path>,
}

impl BuildOptions {
    pub(crate) fn sources(&self) -> Sources<'_> {
        Sources {
            data: &self.data,
            candidates: self.candidates.as_deref(),
            annotations: self.annotations.as_deref(),
        }
    }
}

/// What the build reads, besides the scans' voxels.
pub(crate) struct Inputs {
    /// Series uid → its `.mhd` or DICOM series.
    pub series: BTreeMap<String, ScanSource>,
    pub list: CandidateList,
    /// The candidates CSV used.
    pub csv: PathBuf,
    pub csv_rows: usize,
    pub parse_time: Duration,
    pub list_time: Duration,
}

/// The candidates CSV names tried in the data folder when `--candidates` is
/// not given: the book's `candidates.csv`, else the organisers' revised list
/// (same columns), loose or in the folder its archive unpacks to.
const CANDIDATES_DEFAULTS: [&str; 3] = [
    "candidates.csv",
    "candidates_V2.csv",
    "candidates_V2/candidates_V2.csv",
];

/// `strict`: refuse a CSV row whose scan is not on disk.
pub(crate) fn discover(opts: &Sources, strict: bool) -> Result<Inputs> {
    let annotations_csv = opts
        .annotations
        .map_or_else(|| opts.data.join("annotations.csv"), Path::to_owned);
    let series = find_scans(opts.data)
        .with_context(|| format!("looking for scans under {}", opts.data.display()))?;
    if series.is_empty() {
        bail!(
            "no scans found: expected {}/subset*/<seriesuid>.mhd or DICOM series at any depth",
            opts.data.display()
        );
    }
    let csv = candidates_csv(opts)?;
    let parsing = Instant::now();
    let rows = read_candidates_csv_lines(&csv).context("loading the candidate list")?;
    let parse_time = parsing.elapsed();
    let annotations =
        read_annotations_csv(&annotations_csv).context("loading the candidate list")?;
    let listing = Instant::now();
    let list = build_candidate_list(&rows, &annotations, &series);
    if let Some(warning) = list.duplicates_warning(&csv) {
        eprintln!("warning: {warning}");
    }
    let inputs = Inputs {
        series,
        list,
        csv,
        csv_rows: rows.len(),
        parse_time,
        list_time: listing.elapsed(),
    };
    if strict {
        check_on_disk(&inputs, opts)?;
    }
    Ok(inputs)
}

fn check_on_disk(inputs: &Inputs, opts: &Sources) -> Result<()> {
    if let Some(m) = inputs.list.missing.first() {
        bail!(
            "--strict: {} line {}: series {} is not on disk (no {}.mhd in a subset* folder and no DICOM series of that UID under {}); nothing was written",
            inputs.csv.display(),
            m.line,
            m.series_uid,
            m.series_uid,
            opts.data.display()
        );
    }
    Ok(())
}

fn candidates_csv(opts: &Sources) -> Result<PathBuf> {
    if let Some(path) = opts.candidates {
        return Ok(path.to_owned());
    }
    let found = CANDIDATES_DEFAULTS
        .iter()
        .map(|name| opts.data.join(name))
        .find(|path| path.is_file());
    match found {
        Some(path) => {
            if path != opts.data.join(CANDIDATES_DEFAULTS[0]) {
                println!(
                    "candidates: {} (there is no {})",
                    path.display(),
                    CANDIDATES_DEFAULTS[0]
                );
            }
            Ok(path)
        }
        None => bail!(
            "no candidates CSV in {}: expected {} (or pass --candidates CSV)",
            opts.data.display(),
            CANDIDATES_DEFAULTS.join(" or ")
        ),
    }
}
