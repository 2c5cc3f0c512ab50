//! Reads a DICOM CT series (one file per slice) into one int16 volume with
//! the geometry ITK/SimpleITK's `ImageSeriesReader` gives it, so voxels and
//! world coordinates agree with Python code reading the same series.
//!
//! - [`find_series`]: the image series under a folder, at any depth.
//! - [`read_series`]: one series → [`Volume`] (`[slice][row][column]`).
//! - [`find_one_series`], [`read_series_dir`]: the single series in a
//!   folder, its files or its [`Volume`].
//!
//! Slices are ordered by ImagePositionPatient projected on the normal
//! n = row × column of ImageOrientationPatient; z spacing is the median
//! gap, x and y spacing come from PixelSpacing; the origin is the first
//! slice's position; the direction's columns are the row direction, the
//! column direction and n. Voxels are stored × RescaleSlope +
//! RescaleIntercept of their own slice, rounded half to even and saturated
//! to the int16 range. Nothing is windowed or clipped beyond that.
//!
//! Refused, each with a [`DicomError`] naming the file or series and the
//! reason: mixed orientations, pixel spacings or slice sizes; a missing
//! slice (a gap over 1.5× the median); duplicate positions; gantry tilt;
//! multi-frame objects; a Modality other than CT; colour or non-MONOCHROME2
//! images; BitsAllocated other than 8 or 16; truncated or unreadable files;
//! more than 65536 rows, columns or slices or 2³¹ voxels.

#![deny(missing_docs)]

mod error;
mod file;
mod guard;
mod header;
mod pixels;
mod scan;
mod stack;

/// The README's code samples, compiled as doctests so they cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use std::path::Path;

use rayon::prelude::*;

pub use error::DicomError;
pub use header::MAX_DIM;
pub use metaimage::geometry::Geometry;
pub use metaimage::volume::Volume;
pub use scan::{find_series, SeriesFiles};
pub use stack::MAX_VOXELS;

/// Reads one series into a volume: (slices, rows, columns) in slice order
/// along the normal, values rescaled per slice (see the crate docs).
///
/// Every file is read twice (headers first, then pixels in slice order),
/// so that only the output volume and one slice are in memory at once.
///
/// Files are parsed on rayon's threads (a series is hundreds of files);
/// the first error in file order is the one returned, whatever the timing.
pub fn read_series(series: &SeriesFiles) -> Result<Volume, DicomError> {
    let uid = &series.series_uid;
    if let Some(first) = series.unreadable.first() {
        let (n, of) = (series.unreadable.len(), series.files.len());
        return Err(DicomError::series(
            uid,
            format!("{n} of its {of} files cannot be read; the first: {first}"),
        ));
    }
    let headers = first_error(series.files.par_iter().map(|path| {
        let (obj, stored) = file::open_header(path)?;
        check_series(&obj, stored, uid, path)?;
        let header = header::slice_header(&obj, path)?;
        // Before the volume is allocated: its size must be backed by
        // pixel data actually present, not just claimed by Rows × Columns.
        pixels::check_size(&obj, stored, header.rows as usize * header.columns as usize)
            .map_err(|reason| DicomError::file(path, reason))?;
        Ok(header)
    }))?;
    let stack = stack::arrange(uid, &headers)?;
    let [_, rows, columns] = stack.shape;
    let mut voxels = allocate(uid, stack.shape)?;
    let slices = voxels
        .par_chunks_exact_mut(rows * columns)
        .zip(&stack.order);
    first_error(slices.map(|(slice, &k)| {
        let path = &series.files[k];
        let checked = file::read_checked(path)?;
        let obj = file::parse_header(path, &checked)?;
        let header = header::slice_header(&obj, path)?;
        if header != headers[k] {
            return Err(DicomError::file(path, "changed while the series was read"));
        }
        pixels::check_size(&obj, checked.pixels, slice.len())
            .map_err(|reason| DicomError::file(path, reason))?;
        match checked.pixels {
            // Native data where the file holds it: converted in place.
            guard::PixelBytes::NativeAt { at, len } => {
                let data = checked.bytes.get(at..).and_then(|b| b.get(..len as usize));
                let data = data.ok_or_else(|| DicomError::file(path, "pixel data past the end"))?;
                pixels::native_slice(&obj, data, &header, path, slice)
            }
            // Compressed (or deflated) data: the decoder's, from the same bytes.
            _ => pixels::decode_slice(&file::parse_whole(path, &checked)?, &header, path, slice),
        }
    }))?;
    Volume::new(stack.shape, voxels, stack.geometry)
        .ok_or_else(|| DicomError::series(uid, "internal error: voxel count does not match shape"))
}

/// The values in order, or the first error in order (not the first to
/// happen on some thread), so a broken series always names the same file.
pub(crate) fn first_error<T: Send>(
    results: impl IndexedParallelIterator<Item = Result<T, DicomError>>,
) -> Result<Vec<T>, DicomError> {
    let all: Vec<Result<T, DicomError>> = results.collect();
    all.into_iter().collect()
}

/// Reads the only series under `dir` (at any depth); a folder with none or
/// several is [`DicomError::Folder`].
pub fn read_series_dir(dir: impl AsRef<Path>) -> Result<Volume, DicomError> {
    read_series(&find_one_series(dir)?)
}

/// The only series under `dir` (at any depth); a folder with none or
/// several is [`DicomError::Folder`], listing what it holds.
pub fn find_one_series(dir: impl AsRef<Path>) -> Result<SeriesFiles, DicomError> {
    let dir = dir.as_ref();
    let mut series = find_series(dir)?;
    if series.len() != 1 {
        return Err(not_one_series(dir, &series));
    }
    Ok(series.remove(0))
}

/// The error for a folder with no series or several, listing them.
fn not_one_series(dir: &Path, series: &[SeriesFiles]) -> DicomError {
    let uids: Vec<&str> = series.iter().map(|s| s.series_uid.as_str()).collect();
    let reason = match uids.len() {
        0 => "no DICOM image series found".to_owned(),
        n => format!(
            "{n} series found ({}); read them one by one with find_series and read_series",
            uids.join(", ")
        ),
    };
    DicomError::Folder {
        path: dir.to_owned(),
        reason,
    }
}

/// A file handed to [`read_series`] must be an image of that series.
fn check_series(
    obj: &dicom_object::DefaultDicomObject,
    stored: guard::PixelBytes,
    uid: &str,
    path: &Path,
) -> Result<(), DicomError> {
    match header::classify(obj, stored, path)? {
        header::Kind::Image { series_uid } if series_uid == *uid => Ok(()),
        header::Kind::Image { series_uid } => Err(DicomError::file(
            path,
            format!("belongs to series {series_uid}, not {uid}"),
        )),
        header::Kind::Skip => Err(DicomError::file(
            path,
            "not an image (no pixel data or a non-image SOP class)",
        )),
    }
}

/// The zeroed output buffer; a refused allocation is an error, not an abort.
fn allocate(uid: &str, shape: [usize; 3]) -> Result<Vec<i16>, DicomError> {
    let n = shape.iter().product::<usize>();
    let mut voxels = Vec::new();
    voxels
        .try_reserve_exact(n)
        .map_err(|_| DicomError::series(uid, format!("cannot allocate {n} voxels")))?;
    voxels.resize(n, 0);
    Ok(voxels)
}
