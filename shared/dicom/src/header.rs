//! The attributes of one slice that the series reader needs, read and
//! bounded before any pixel is decoded.

use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;

use crate::error::DicomError;
use crate::guard::PixelBytes;

/// The largest number of rows, columns or slices accepted.
pub const MAX_DIM: u32 = 65536;

/// What one image file says about its slice.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SliceHeader {
    pub rows: u32,
    pub columns: u32,
    /// Row direction then column direction (ImageOrientationPatient).
    pub orientation: [f64; 6],
    /// ImagePositionPatient: centre of the first voxel, mm.
    pub position: [f64; 3],
    /// PixelSpacing: (between rows, between columns) = (y, x).
    pub pixel_spacing: [f64; 2],
    pub slope: f64,
    pub intercept: f64,
    /// SliceThickness, used as the z spacing of a one-slice series only.
    pub thickness: Option<f64>,
}

/// Whether a parsed file is an image of a series, or something to skip.
pub(crate) enum Kind {
    Image { series_uid: String },
    Skip,
}

/// SOP classes that carry pixel data but are not images of the patient
/// (prefix match): segmentations, RT objects, structured reports,
/// presentation states, raw data, encapsulated documents.
const NON_IMAGE_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.66",
    "1.2.840.10008.5.1.4.1.1.481.",
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.11.",
    "1.2.840.10008.5.1.4.1.1.104.",
];

/// CT Image Storage and Enhanced CT Image Storage: a file of either class
/// without pixel data is a slice cut short, not an object to pass over.
const CT_CLASSES: &[&str] = &["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"];

/// Sorts a parsed file: DICOMDIRs, objects without PixelData and non-image
/// SOP classes are skipped; images must name their series. A CT image
/// without pixel data is an error: a file cut off at an element boundary
/// parses, and passing it over would leave its series a slice short
/// (silently, were it the first or last).
pub(crate) fn classify(
    obj: &DefaultDicomObject,
    pixels: PixelBytes,
    path: &Path,
) -> Result<Kind, DicomError> {
    let media_class = obj.meta().media_storage_sop_class_uid();
    let sop_class = text(obj, tags::SOP_CLASS_UID).unwrap_or_default();
    let non_image = |class: &str| NON_IMAGE_CLASSES.iter().any(|p| class.starts_with(p));
    if media_class == uids::MEDIA_STORAGE_DIRECTORY_STORAGE
        || non_image(&sop_class)
        || non_image(media_class)
    {
        return Ok(Kind::Skip);
    }
    if pixels == PixelBytes::None {
        let ct = |class: &str| CT_CLASSES.contains(&class);
        if ct(&sop_class) || ct(media_class) {
            return Err(DicomError::file(
                path,
                "truncated: a CT image without pixel data",
            ));
        }
        return Ok(Kind::Skip);
    }
    match text(obj, tags::SERIES_INSTANCE_UID) {
        Some(uid) if !uid.is_empty() => Ok(Kind::Image { series_uid: uid }),
        _ => Err(DicomError::file(path, "image without a SeriesInstanceUID")),
    }
}

/// Reads and checks a slice's attributes: one frame, one sample, CT,
/// MONOCHROME2, 8- or 16-bit, at most [`MAX_DIM`] rows and columns.
pub(crate) fn slice_header(
    obj: &DefaultDicomObject,
    path: &Path,
) -> Result<SliceHeader, DicomError> {
    let bad = |reason: String| DicomError::file(path, reason);
    check_pixel_format(obj, path)?;
    let rows = dim(obj, tags::ROWS, "Rows").map_err(bad)?;
    let columns = dim(obj, tags::COLUMNS, "Columns").map_err(bad)?;
    let orientation = fixed::<6>(
        obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
    )
    .map_err(bad)?;
    let position =
        fixed::<3>(obj, tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient").map_err(bad)?;
    let pixel_spacing = fixed::<2>(obj, tags::PIXEL_SPACING, "PixelSpacing").map_err(bad)?;
    if pixel_spacing.iter().any(|&s| s <= 0.0) {
        return Err(bad(format!(
            "PixelSpacing {pixel_spacing:?} is not positive"
        )));
    }
    let slope = optional_float(obj, tags::RESCALE_SLOPE, 1.0).map_err(bad)?;
    let intercept = optional_float(obj, tags::RESCALE_INTERCEPT, 0.0).map_err(bad)?;
    let thickness = optional_float(obj, tags::SLICE_THICKNESS, 0.0)
        .ok()
        .filter(|&t| t > 0.0);
    Ok(SliceHeader {
        rows,
        columns,
        orientation,
        position,
        pixel_spacing,
        slope,
        intercept,
        thickness,
    })
}

/// Refuses what the series reader cannot turn into one CT slice.
fn check_pixel_format(obj: &DefaultDicomObject, path: &Path) -> Result<(), DicomError> {
    let bad = |reason: String| Err(DicomError::file(path, reason));
    let modality = text(obj, tags::MODALITY).unwrap_or_default();
    if modality != "CT" {
        return bad(format!("Modality is {modality:?}, not CT"));
    }
    // Absent or empty means one frame; "01" is one frame too.
    if let Some(frames) = text(obj, tags::NUMBER_OF_FRAMES).filter(|f| !f.is_empty()) {
        if frames.parse::<u32>().ok() != Some(1) {
            return bad(format!(
                "multi-frame object (NumberOfFrames {frames}); one file per slice is required"
            ));
        }
    }
    let samples = uint(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if samples != 1 || photometric != "MONOCHROME2" {
        return bad(format!(
            "{samples} samples per pixel, {photometric:?}; only MONOCHROME2 greyscale is read"
        ));
    }
    match uint(obj, tags::BITS_ALLOCATED) {
        Some(8 | 16) => Ok(()),
        other => bad(format!("BitsAllocated {other:?}; only 8 and 16 are read")),
    }
}

/// A string attribute without its padding; None when absent or not text.
pub(crate) fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let value = obj.element_opt(tag).ok()??.to_str().ok()?;
    Some(value.trim_matches(['\0', ' ']).to_owned())
}

pub(crate) fn uint(obj: &DefaultDicomObject, tag: Tag) -> Option<u32> {
    obj.element_opt(tag).ok()??.to_int::<u32>().ok()
}

fn dim(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<u32, String> {
    match uint(obj, tag) {
        Some(n) if (1..=MAX_DIM).contains(&n) => Ok(n),
        Some(n) => Err(format!("{name} {n} is outside 1..={MAX_DIM}")),
        None => Err(format!("{name} is missing or not a number")),
    }
}

/// Exactly `N` finite numbers.
fn fixed<const N: usize>(
    obj: &DefaultDicomObject,
    tag: Tag,
    name: &str,
) -> Result<[f64; N], String> {
    let values = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_float64().ok())
        .ok_or_else(|| format!("{name} is missing or not numeric"))?;
    let array: [f64; N] = values
        .as_slice()
        .try_into()
        .map_err(|_| format!("{name} has {} values, not {N}", values.len()))?;
    if array.iter().any(|v| !v.is_finite()) {
        return Err(format!("{name} {array:?} is not finite"));
    }
    Ok(array)
}

/// A finite number, `default` when the attribute is absent or empty.
fn optional_float(obj: &DefaultDicomObject, tag: Tag, default: f64) -> Result<f64, String> {
    let Some(element) = obj.element_opt(tag).ok().flatten() else {
        return Ok(default);
    };
    if element
        .to_str()
        .is_ok_and(|s| s.trim_matches(['\0', ' ']).is_empty())
    {
        return Ok(default);
    }
    match element.to_float64() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{tag} is not a finite number")),
    }
}
