//! Where a scan's voxels come from: a MetaImage file (LUNA16's `.mhd` +
//! `.raw`, or `.mha`) or a DICOM series (LIDC-IDRI's and every hospital's
//! CT), behind one type so that every tool that reads a scan takes both.
//! Both readers give the same [`Volume`]: int16 as stored (HU for CT),
//! `[slice][row][column]`, ITK's geometry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_series::{DicomError, SeriesFiles};
use metaimage::volume::{Scan, Volume};
use metaimage::MetaImageError;

use crate::luna::{find_series, LunaError};

/// A scan on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanSource {
    /// A `.mhd` or `.mha` file.
    MetaImage(PathBuf),
    /// The files of one DICOM series.
    Dicom(SeriesFiles),
}

/// Why a scan could not be read: the reader's error, which names the file
/// or series and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    MetaImage(#[from] MetaImageError),
    #[error(transparent)]
    Dicom(#[from] DicomError),
}

/// Why the scans under a folder could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error(transparent)]
    Luna(#[from] LunaError),
    #[error(transparent)]
    Dicom(#[from] DicomError),
    #[error("series {uid} is on disk twice: {first} and the DICOM series in {second}")]
    Duplicate {
        uid: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// Every scan under `data_dir` by series UID: LUNA16's
/// `subset*/<uid>.mhd` files ([`find_series`]'s rules) and the DICOM
/// series at any depth (LIDC-IDRI's `patient/study/series/*.dcm`), side by
/// side. A UID found both ways is an error naming both places.
pub fn find_scans(data_dir: &Path) -> Result<BTreeMap<String, ScanSource>, FindError> {
    let mut found: BTreeMap<String, ScanSource> = find_series(data_dir)?
        .into_iter()
        .map(|(uid, path)| (uid, ScanSource::MetaImage(path)))
        .collect();
    for series in dicom_series::find_series(data_dir)? {
        let source = ScanSource::Dicom(series);
        let uid = source.series_uid().unwrap_or_default().to_owned();
        if let Some(first) = found.get(&uid) {
            return Err(FindError::Duplicate {
                first: first.path().to_owned(),
                second: source.path().to_owned(),
                uid,
            });
        }
        found.insert(uid, source);
    }
    Ok(found)
}

impl ScanSource {
    /// The scan at `path`: a folder is the one DICOM series below it (at any
    /// depth; none or several is an error listing them), anything else a
    /// MetaImage file.
    pub fn at(path: &Path) -> Result<ScanSource, ScanError> {
        if path.is_dir() {
            Ok(ScanSource::Dicom(dicom_series::find_one_series(path)?))
        } else {
            Ok(ScanSource::MetaImage(path.to_owned()))
        }
    }

    /// What to name the scan by in messages: the MetaImage file, or the
    /// folder of the series' first file.
    pub fn path(&self) -> &Path {
        match self {
            ScanSource::MetaImage(path) => path,
            ScanSource::Dicom(series) => series
                .files
                .first()
                .and_then(|f| f.parent())
                .unwrap_or(Path::new(".")),
        }
    }

    /// The series UID the scan says it has: a DICOM series' own, LUNA's
    /// file stem for a MetaImage file (`<seriesuid>.mhd`).
    pub fn series_uid(&self) -> Option<&str> {
        match self {
            ScanSource::MetaImage(path) => path.file_stem().and_then(|s| s.to_str()),
            ScanSource::Dicom(series) => Some(&series.series_uid),
        }
    }

    /// The whole volume, decoded.
    pub fn read_volume(&self) -> Result<Volume, ScanError> {
        match self {
            ScanSource::MetaImage(path) => Ok(metaimage::read_volume(path)?),
            ScanSource::Dicom(series) => Ok(dicom_series::read_series(series)?),
        }
    }

    /// The scan for cropping: a MetaImage file mapped when its layout
    /// allows (see [`metaimage::open_scan_reusing`]), anything else decoded,
    /// into `buffer` when that is a MetaImage's int16 data.
    pub fn open_reusing(&self, buffer: Vec<i16>) -> Result<Scan, ScanError> {
        match self {
            ScanSource::MetaImage(path) => Ok(metaimage::open_scan_reusing(path, buffer)?),
            ScanSource::Dicom(series) => Ok(Scan::Owned(dicom_series::read_series(series)?)),
        }
    }
}
