//! Slices → one volume's geometry, as ITK's ImageSeriesReader builds it:
//! ordered along the slice normal, spacing from the gaps, origin at the
//! first slice. Everything that would make the stack irregular is refused.

use metaimage::geometry::Geometry;

use crate::error::DicomError;
use crate::header::{SliceHeader, MAX_DIM};

/// The most voxels in one volume (2³¹, 4 GiB of int16).
pub const MAX_VOXELS: u64 = 1 << 31;
/// Orientation cosines and pixel spacings that differ by less are equal
/// (DICOM writes them as decimal text).
const TOLERANCE: f64 = 1e-4;
/// Positions closer than this (mm) along the normal are duplicates.
const DUPLICATE_MM: f64 = 1e-3;
/// A gap beyond this many median gaps means a missing slice.
const MISSING_GAP: f64 = 1.5;
/// Largest sine of the angle between consecutive offsets and the normal:
/// 1e-3 rad (0.06°); scanner gantry tilts are whole degrees.
const MAX_TILT_SINE: f64 = 1e-3;

/// How the slices of a series stack into a volume.
#[derive(Debug)]
pub(crate) struct Stack {
    /// Indices into the headers, lowest projection on the normal first.
    pub order: Vec<usize>,
    /// (slices, rows, columns).
    pub shape: [usize; 3],
    pub geometry: Geometry,
}

/// Orders `slices` and derives the geometry, or says why they are not one
/// regular volume.
pub(crate) fn arrange(uid: &str, slices: &[SliceHeader]) -> Result<Stack, DicomError> {
    let fail = |reason: String| DicomError::series(uid, reason);
    let first = slices
        .first()
        .ok_or_else(|| fail("no image files".into()))?;
    check_uniform(slices).map_err(fail)?;
    let shape = check_shape(first, slices.len()).map_err(fail)?;
    let [row, col] = [vec3(&first.orientation[..3]), vec3(&first.orientation[3..])];
    let normal = unit(cross(row, col)).ok_or_else(|| {
        fail(format!(
            "ImageOrientationPatient {:?} has parallel axes",
            first.orientation
        ))
    })?;
    let projection = |s: &SliceHeader| dot(s.position, normal);
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by(|&a, &b| projection(&slices[a]).total_cmp(&projection(&slices[b])));
    let positions: Vec<[f64; 3]> = order.iter().map(|&i| slices[i].position).collect();
    let z_spacing = match positions.len() {
        1 => first.thickness.unwrap_or(1.0),
        _ => slice_spacing(&positions, normal).map_err(fail)?,
    };
    let origin = positions[0];
    let geometry = Geometry::new(
        origin,
        [first.pixel_spacing[1], first.pixel_spacing[0], z_spacing],
        std::array::from_fn(|r| [row[r], col[r], normal[r]]),
    );
    Ok(Stack {
        order,
        shape,
        geometry,
    })
}

/// Every slice has the first one's size, orientation and pixel spacing.
fn check_uniform(slices: &[SliceHeader]) -> Result<(), String> {
    let first = &slices[0];
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= TOLERANCE);
    for s in &slices[1..] {
        if (s.rows, s.columns) != (first.rows, first.columns) {
            return Err(format!(
                "mixed slice sizes: {}×{} and {}×{} (rows × columns)",
                first.rows, first.columns, s.rows, s.columns
            ));
        }
        if !close(&s.orientation, &first.orientation) {
            return Err(format!(
                "mixed orientations: ImageOrientationPatient {:?} and {:?}",
                first.orientation, s.orientation
            ));
        }
        if !close(&s.pixel_spacing, &first.pixel_spacing) {
            return Err(format!(
                "mixed pixel spacing: {:?} and {:?}",
                first.pixel_spacing, s.pixel_spacing
            ));
        }
    }
    Ok(())
}

/// (slices, rows, columns), each at most [`MAX_DIM`], with at most
/// [`MAX_VOXELS`] voxels in all.
fn check_shape(first: &SliceHeader, slices: usize) -> Result<[usize; 3], String> {
    if slices > MAX_DIM as usize {
        return Err(format!("{slices} slices, over the limit of {MAX_DIM}"));
    }
    let voxels = slices as u64 * u64::from(first.rows) * u64::from(first.columns);
    if voxels > MAX_VOXELS {
        return Err(format!(
            "{slices}×{}×{} = {voxels} voxels, over the limit of {MAX_VOXELS}",
            first.rows, first.columns
        ));
    }
    Ok([slices, first.rows as usize, first.columns as usize])
}

/// The median gap between consecutive (ordered) positions along the
/// normal, after refusing duplicates, missing slices and gantry tilt.
fn slice_spacing(positions: &[[f64; 3]], normal: [f64; 3]) -> Result<f64, String> {
    let offsets: Vec<[f64; 3]> = positions
        .windows(2)
        .map(|w| std::array::from_fn(|k| w[1][k] - w[0][k]))
        .collect();
    let gaps: Vec<f64> = offsets.iter().map(|&d| dot(d, normal)).collect();
    if let Some(k) = gaps.iter().position(|&g| g < DUPLICATE_MM) {
        return Err(format!(
            "duplicate slice position {:?} (two slices {:.4} mm apart along the normal)",
            positions[k + 1],
            gaps[k]
        ));
    }
    for (k, (&d, &g)) in offsets.iter().zip(&gaps).enumerate() {
        let across = norm(std::array::from_fn(|i| d[i] - g * normal[i]));
        if across > MAX_TILT_SINE * g + 1e-5 {
            return Err(format!(
                "gantry tilt or sheared stack: slice {} lies {across:.4} mm off the normal through slice {k} ({g:.4} mm along it)",
                k + 1
            ));
        }
    }
    let median = median(&gaps);
    if let Some(k) = gaps.iter().position(|&g| g > MISSING_GAP * median) {
        return Err(format!(
            "missing slice: a gap of {:.4} mm after slice {k} (position {:?}), over {MISSING_GAP}× the median gap {median:.4} mm",
            gaps[k], positions[k]
        ));
    }
    Ok(median)
}

/// Median of a non-empty list (mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn vec3(v: &[f64]) -> [f64; 3] {
    [v[0], v[1], v[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// `a` scaled to length 1; None when it is (nearly) zero.
fn unit(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = norm(a);
    (n > 1e-6).then(|| a.map(|x| x / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(z: f64) -> SliceHeader {
        SliceHeader {
            rows: 512,
            columns: 512,
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            position: [0.0, 0.0, z],
            pixel_spacing: [0.7, 0.7],
            slope: 1.0,
            intercept: 0.0,
            thickness: None,
        }
    }

    #[test]
    fn volume_limits_are_checked_from_headers() {
        let mut big = slice(0.0);
        (big.rows, big.columns) = (MAX_DIM, MAX_DIM);
        let err = check_shape(&big, 1).unwrap_err();
        assert!(err.contains("over the limit of 2147483648"), "{err}");
        let err = check_shape(&slice(0.0), MAX_DIM as usize + 1).unwrap_err();
        assert!(err.contains("slices, over the limit"), "{err}");
        assert_eq!(check_shape(&slice(0.0), 8192).unwrap(), [8192, 512, 512]);
    }

    #[test]
    fn uneven_but_complete_gaps_use_the_median() {
        let slices: Vec<_> = [0.0, 1.0, 2.2, 3.0, 4.0].map(slice).into();
        let stack = arrange("uid", &slices).unwrap();
        assert_eq!(stack.geometry.spacing[2], 1.0);
        assert_eq!(stack.order, [0, 1, 2, 3, 4]);
    }
}
