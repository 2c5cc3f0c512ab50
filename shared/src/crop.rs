//! Candidate crops, the book's rule: (32, 48, 48) voxels around a centre
//! (any shape through [`crop_start_for`]),
//! shifted (never padded) to stay inside the volume, so every crop is
//! real scan data even next to an edge, clipped to LUNA's HU window.

use crate::geometry::Irc;
use crate::hu::clip_hu;
use crate::volume::VoxelSource;

pub const CROP_SHAPE: [usize; 3] = [32, 48, 48];
pub const CROP_VOXELS: usize = CROP_SHAPE[0] * CROP_SHAPE[1] * CROP_SHAPE[2];

const AXIS_NAMES: [&str; 3] = ["i (slices)", "r (rows)", "c (columns)"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CropError {
    /// The whole volume is unusable: no crop fits along this axis.
    #[error("volume has {size} voxels along axis {axis}, fewer than the crop's {width}")]
    VolumeTooSmall {
        axis: &'static str,
        size: usize,
        width: usize,
    },
    /// Only this candidate is unusable; the tool skips it with a warning.
    #[error("candidate centre {center:?} (i, r, c) lies outside the volume of shape {shape:?}")]
    CenterOutside { center: Irc, shape: [usize; 3] },
    #[error("crop buffer holds {got} voxels, expected {expected}")]
    BufferSize { expected: usize, got: usize },
    #[error("volume of shape {shape:?} holds {got} voxels")]
    InconsistentVolume { shape: [usize; 3], got: usize },
}

/// Start index (i, r, c) of the crop around `center_irc`: per axis
/// `center - width/2`, moved inward so the crop lies inside `shape`.
pub fn crop_start(shape: [usize; 3], center_irc: Irc) -> Result<[usize; 3], CropError> {
    crop_start_for(shape, CROP_SHAPE, center_irc)
}

/// [`crop_start`] for a crop of any `width` (i, r, c): the book's
/// `Ct.getRawCandidate`, which chapter 13 calls with (7, 96, 96).
pub fn crop_start_for(
    shape: [usize; 3],
    width: [usize; 3],
    center_irc: Irc,
) -> Result<[usize; 3], CropError> {
    for axis in 0..3 {
        if shape[axis] < width[axis] {
            return Err(CropError::VolumeTooSmall {
                axis: AXIS_NAMES[axis],
                size: shape[axis],
                width: width[axis],
            });
        }
    }
    let inside = (0..3).all(|a| center_irc[a] >= 0 && (center_irc[a] as u64) < shape[a] as u64);
    if !inside {
        return Err(CropError::CenterOutside {
            center: center_irc,
            shape,
        });
    }
    let mut start = [0usize; 3];
    for axis in 0..3 {
        let wanted = book_round_start(center_irc[axis], width[axis]);
        let last_start = (shape[axis] - width[axis]) as i64;
        start[axis] = wanted.clamp(0, last_start) as usize;
    }
    Ok(start)
}

/// The book's `int(round(center - width/2))` for an integer centre. Exact
/// for an even width; for an odd one `center - width/2` ends in .5 and
/// Python's `round` goes to the even neighbour, so a 7-slice crop around
/// slice 10 starts at 6 (slices 6..=12, centre slice 9) and around 11 at 8.
fn book_round_start(center: i64, width: usize) -> i64 {
    let below = center - (width / 2) as i64;
    if width.is_multiple_of(2) {
        return below;
    }
    // center - width/2 = below - 0.5: the even one of below - 1 and below.
    if below.rem_euclid(2) == 0 {
        below
    } else {
        below - 1
    }
}

/// Copy the crop around `center_irc` into `out` (`CROP_VOXELS` long, `[i][r][c]`
/// order, clipped to the [`crate::hu`] window) and return its start index in
/// the volume.
pub fn crop_candidate<S: VoxelSource + ?Sized>(
    volume: &S,
    center_irc: Irc,
    out: &mut [i16],
) -> Result<[usize; 3], CropError> {
    if out.len() != CROP_VOXELS {
        return Err(CropError::BufferSize {
            expected: CROP_VOXELS,
            got: out.len(),
        });
    }
    let shape = volume.shape();
    let held = volume.stored_voxels();
    if Some(held) != shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        return Err(CropError::InconsistentVolume { shape, got: held });
    }
    let start = crop_start(shape, center_irc)?;
    const WIDTH: usize = CROP_SHAPE[2];
    let rows = out.chunks_exact_mut(WIDTH);
    let sources = (0..CROP_SHAPE[0]).flat_map(|i| (0..CROP_SHAPE[1]).map(move |r| (i, r)));
    for (dst, (i, r)) in rows.zip(sources) {
        let dst: &mut [i16; WIDTH] = dst.try_into().expect("chunks_exact yields WIDTH-long rows");
        volume.copy_row([start[0] + i, start[1] + r, start[2]], dst);
        clip_hu(dst);
    }
    Ok(start)
}
