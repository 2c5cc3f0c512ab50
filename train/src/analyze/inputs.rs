//! What `train analyze` runs over: the scans a user names, or a data set's
//! series split as training splits it (the book's `--run-validation`), and
//! the truth to score against when there is one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shared::luna::split::validation_series;
use shared::luna::{read_annotations_with_malignancy_csv, LunaError};
use shared::scan_source::{find_scans, FindError, ScanError, ScanSource};

use super::matching::TrueNodule;
use crate::data::split::Split;
use crate::evaluate::luna16::{self, Finding, InputError};

/// A scan to analyse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanInput {
    /// A DICOM series' own UID; a MetaImage file's stem, which LUNA16 names
    /// after the series.
    pub series_uid: String,
    /// The file, or the series' folder, for messages.
    pub path: PathBuf,
    pub source: ScanSource,
}

impl ScanInput {
    /// The scan at `path`: a MetaImage file, or a folder holding one DICOM
    /// series.
    pub fn at(path: &Path) -> Result<ScanInput, ScanError> {
        Ok(ScanInput::of(ScanSource::at(path)?, path))
    }

    fn of(source: ScanSource, path: &Path) -> ScanInput {
        ScanInput {
            series_uid: source.series_uid().unwrap_or_default().to_owned(),
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    #[error(transparent)]
    Data(#[from] LunaError),
    #[error(transparent)]
    Scans(#[from] FindError),
    #[error("{dir}: no series in the {split} split (of {series} with --val-stride {stride})")]
    EmptySplit {
        dir: PathBuf,
        split: &'static str,
        series: usize,
        stride: u32,
    },
    #[error(transparent)]
    Annotations(#[from] InputError),
}

/// The scans of `data` (LUNA16's `subset*/<uid>.mhd` and DICOM series at
/// any depth) in `split`: every `val_stride`-th of the sorted series list
/// is validation, the rule `prepcache seg` and `--split-by series` use.
pub fn split_scans(
    data: &Path,
    split: Split,
    val_stride: u32,
) -> Result<Vec<ScanInput>, InputsError> {
    let series: BTreeMap<String, ScanSource> = find_scans(data)?;
    let uids: Vec<&String> = series.keys().collect();
    let validation = validation_series(&uids, val_stride as usize)?;
    let scans: Vec<ScanInput> = series
        .iter()
        .zip(validation)
        .filter(|(_, is_val)| match split {
            Split::Val => *is_val,
            Split::Train => !*is_val,
            Split::All => true,
        })
        .map(|((uid, source), _)| ScanInput {
            series_uid: uid.clone(),
            path: source.path().to_owned(),
            source: source.clone(),
        })
        .collect();
    if scans.is_empty() {
        return Err(InputsError::EmptySplit {
            dir: data.to_owned(),
            split: split.log_name(),
            series: series.len(),
            stride: val_stride,
        });
    }
    Ok(scans)
}

/// The annotations a data folder carries: with malignancy when it has
/// `annotations_with_malignancy.csv`, else `annotations.csv`, else none.
pub fn default_annotations(data: &Path) -> Option<PathBuf> {
    ["annotations_with_malignancy.csv", "annotations.csv"]
        .iter()
        .map(|name| data.join(name))
        .find(|p| p.is_file())
}

/// The true nodules of every scan, and the findings the LUNA16 score reads.
pub struct Truth {
    pub file: PathBuf,
    pub findings: Vec<Finding>,
    pub by_series: BTreeMap<String, Vec<TrueNodule>>,
}

impl Truth {
    /// Reads an annotations file; with a `mal_bool` column (the book's
    /// `annotations_with_malignancy.csv`) each nodule's malignancy too.
    pub fn read(path: &Path) -> Result<Truth, InputsError> {
        let (findings, malignant) = if has_malignancy(path) {
            let rows = read_annotations_with_malignancy_csv(path)?;
            let findings = rows
                .iter()
                .map(|r| Finding {
                    seriesuid: r.series_uid.clone(),
                    center: r.center_xyz,
                    diameter_mm: r.diameter_mm,
                })
                .collect();
            (findings, rows.iter().map(|r| Some(r.malignant)).collect())
        } else {
            let findings = luna16::read_annotations(path)?;
            let unknown = vec![None; findings.len()];
            (findings, unknown)
        };
        let mut by_series: BTreeMap<String, Vec<TrueNodule>> = BTreeMap::new();
        for (f, malignant) in findings.iter().zip(malignant) {
            by_series
                .entry(f.seriesuid.clone())
                .or_default()
                .push(TrueNodule {
                    center_xyz: f.center,
                    diameter_mm: f.diameter_mm,
                    malignant,
                });
        }
        Ok(Truth {
            file: path.to_owned(),
            findings,
            by_series,
        })
    }

    /// Whether any nodule's malignancy is known.
    pub fn knows_malignancy(&self) -> bool {
        self.by_series
            .values()
            .flatten()
            .any(|n| n.malignant.is_some())
    }

    /// The nodules of `series_uid` (none when it has none).
    pub fn of(&self, series_uid: &str) -> &[TrueNodule] {
        self.by_series.get(series_uid).map_or(&[], Vec::as_slice)
    }
}

/// Whether the CSV's header names a `mal_bool` column.
fn has_malignancy(path: &Path) -> bool {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut header = String::new();
    let _ = std::io::BufReader::new(file).read_line(&mut header);
    header.split(',').any(|c| c.trim() == "mal_bool")
}
