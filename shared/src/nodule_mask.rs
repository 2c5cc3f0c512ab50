//! Chapter 13's nodule mask, as the book builds it (`Ct.buildAnnotationMask`
//! in `p2ch13/dsets.py`): the segmentation target of every positive
//! candidate's slices.
//!
//! The rule, per positive candidate with centre voxel (ci, cr, cc):
//!
//! 1. Along the slice axis, grow `index_radius` from 2 while both
//!    `hu[ci + r, cr, cc] > threshold` and `hu[ci - r, cr, cc] > threshold`
//!    (checked in that order, stopping at the first that fails). Then the same
//!    along rows (`hu[ci, cr ± r, cc]`) and columns (`hu[ci, cr, cc ± r]`),
//!    each from 2.
//! 2. Mark the box `ci - index_radius : ci + index_radius + 1`,
//!    `cr - row_radius : cr + row_radius + 1`,
//!    `cc - col_radius : cc + row_radius + 1` — the column slice ends with
//!    the *row* radius, a slip in the book's code kept here because the
//!    masks must be the book's.
//! 3. The mask is the union of the boxes AND `hu > threshold` (−700 HU).
//!
//! The book indexes numpy arrays with Python integers, and that is
//! reproduced exactly rather than "fixed":
//! - A read past the far end raises `IndexError`, which the book catches by
//!   stepping the radius back by one (so a nodule at the end gets radius 1).
//! - A negative index wraps around: `hu[ci - r]` with `ci < r` reads the far
//!   end of the axis, and the growth goes on if that is bright.
//! - A slice with a negative start starts that far from the far end, so a
//!   box reaching below index 0 is usually empty on that axis (and then
//!   marks nothing); stops past the end are cut to the axis.
//!
//! The book reads `Ct.hu_a`, the scan as stored in float32, not clipped
//! (p2ch13 does not clip `hu_a`; its crops are clipped later). Clipping to
//! LUNA's window ([`crate::hu`]) would change no comparison anyway for a
//! threshold inside [−1000, 1000). Values here are compared as `f32`, as
//! numpy compares the float32 array with the threshold.
//!
//! Centres come from [`Geometry::xyz_to_irc`], which rounds as the book's
//! `xyz2irc` does (`np.round`, ties to even). A centre outside the volume is
//! refused ([`NoduleMaskError::CentreOutside`]): the book would read wrapped
//! voxels or catch `IndexError`s and mark voxels unrelated to the nodule.

use std::ops::Range;

use crate::geometry::{Geometry, GeometryError, Irc, Xyz};
use crate::volume::Volume;

/// The book's `threshold_hu`: denser than this is nodule (or other tissue),
/// lighter is lung air.
pub const BOOK_THRESHOLD_HU: f32 = -700.0;
/// Every radius search starts here, so even a one-voxel nodule gets a box
/// 5 voxels wide (before the AND with the threshold).
pub const START_RADIUS: i64 = 2;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NoduleMaskError {
    #[error("volume of shape {shape:?} holds {got} voxels")]
    VolumeSize { shape: [usize; 3], got: usize },
    /// Refused rather than reproduced: see the module docs.
    #[error(
        "positive candidate {candidate} has centre {centre:?} (i, r, c), outside the volume of shape {shape:?}"
    )]
    CentreOutside {
        /// Position of the candidate in the list given.
        candidate: usize,
        centre: Irc,
        shape: [usize; 3],
    },
    #[error("positive candidate {candidate}: {source}")]
    Geometry {
        candidate: usize,
        source: GeometryError,
    },
}

/// A volume's HU values (`[i][r][c]`, c fastest) checked against its shape,
/// so the searches below index it without further checks.
#[derive(Debug, Clone, Copy)]
pub struct HuGrid<'a, T> {
    voxels: &'a [T],
    shape: [usize; 3],
}

impl<'a, T: Copy + Into<f32>> HuGrid<'a, T> {
    pub fn new(voxels: &'a [T], shape: [usize; 3]) -> Result<Self, NoduleMaskError> {
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count != Some(voxels.len()) {
            return Err(NoduleMaskError::VolumeSize {
                shape,
                got: voxels.len(),
            });
        }
        Ok(HuGrid { voxels, shape })
    }

    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn flat(&self, irc: [usize; 3]) -> usize {
        (irc[0] * self.shape[1] + irc[1]) * self.shape[2] + irc[2]
    }

    fn hu(&self, irc: [usize; 3]) -> f32 {
        self.voxels[self.flat(irc)].into()
    }

    /// The centre as indices, when it lies inside the volume.
    fn inside(&self, centre: Irc) -> Option<[usize; 3]> {
        let mut out = [0usize; 3];
        for axis in 0..3 {
            out[axis] = usize::try_from(centre[axis])
                .ok()
                .filter(|&v| v < self.shape[axis])?;
        }
        Some(out)
    }
}

/// One candidate's box, as the book computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoduleBox {
    /// `index_radius`, `row_radius`, `col_radius` where the book's searches
    /// ended (1 after an `IndexError`, else at least [`START_RADIUS`]).
    pub radius: [i64; 3],
    /// The voxels marked along i, r and c: the book's slices as numpy
    /// resolves them (negative starts wrap, ends are cut to the axis; the
    /// column range ends at `cc + row_radius`). Empty on any axis means the
    /// box marks nothing.
    pub ranges: [Range<usize>; 3],
}

impl NoduleBox {
    pub fn is_empty(&self) -> bool {
        self.ranges.iter().any(|r| r.is_empty())
    }
}

/// Python's resolution of an integer index `i` on an axis of `n`: negative
/// counts from the end; `None` is numpy's `IndexError`.
fn python_index(i: i64, n: i64) -> Option<usize> {
    if (0..n).contains(&i) {
        Some(i as usize)
    } else if (-n..0).contains(&i) {
        Some((i + n) as usize)
    } else {
        None
    }
}

/// Python's resolution of `start:stop` (step 1) on an axis of `n`.
fn python_slice(start: i64, stop: i64, n: i64) -> Range<usize> {
    let resolve = |x: i64| if x < 0 { (x + n).max(0) } else { x.min(n) };
    let (a, b) = (resolve(start), resolve(stop));
    a as usize..b.max(a) as usize
}

/// The book's radius search along one axis of length `n` through centre
/// coordinate `c`; `read(k)` is the HU at position k on that line.
fn grow_radius(n: usize, c: usize, threshold: f32, read: impl Fn(usize) -> f32) -> i64 {
    let (n, c) = (n as i64, c as i64);
    // As numpy's `>`: a NaN (only possible for float input) is not above.
    let above = |k: usize| read(k) > threshold;
    let mut r = START_RADIUS;
    loop {
        // `a and b`: the minus side is read only when the plus side passed,
        // and an IndexError on either side steps the radius back.
        let Some(plus) = python_index(c + r, n) else {
            return r - 1;
        };
        if !above(plus) {
            return r;
        }
        let Some(minus) = python_index(c - r, n) else {
            return r - 1;
        };
        if !above(minus) {
            return r;
        }
        r += 1;
    }
}

/// The box the book marks for a positive candidate centred at `centre`
/// (i, r, c). `Err` names the centre when it lies outside the volume
/// (`candidate` is then 0: [`annotation_mask`] fills in the position).
pub fn nodule_box<T: Copy + Into<f32>>(
    grid: &HuGrid<'_, T>,
    centre: Irc,
    threshold: f32,
) -> Result<NoduleBox, NoduleMaskError> {
    let shape = grid.shape;
    let Some([ci, cr, cc]) = grid.inside(centre) else {
        return Err(NoduleMaskError::CentreOutside {
            candidate: 0,
            centre,
            shape,
        });
    };
    let index_radius = grow_radius(shape[0], ci, threshold, |k| grid.hu([k, cr, cc]));
    let row_radius = grow_radius(shape[1], cr, threshold, |k| grid.hu([ci, k, cc]));
    let col_radius = grow_radius(shape[2], cc, threshold, |k| grid.hu([ci, cr, k]));
    let [ci, cr, cc] = [ci as i64, cr as i64, cc as i64];
    let n = shape.map(|d| d as i64);
    Ok(NoduleBox {
        radius: [index_radius, row_radius, col_radius],
        ranges: [
            python_slice(ci - index_radius, ci + index_radius + 1, n[0]),
            python_slice(cr - row_radius, cr + row_radius + 1, n[1]),
            // The book's slip, kept: the column slice ends with row_radius.
            python_slice(cc - col_radius, cc + row_radius + 1, n[2]),
        ],
    })
}

/// The union of the candidates' boxes (the book's `boundingBox_a`), one
/// bool per voxel in `[i][r][c]` order.
pub fn bounding_box_mask<T: Copy + Into<f32>>(
    grid: &HuGrid<'_, T>,
    centres: &[Irc],
    threshold: f32,
) -> Result<Vec<bool>, NoduleMaskError> {
    let mut mask = vec![false; grid.voxels.len()];
    for (candidate, &centre) in centres.iter().enumerate() {
        let nodule = nodule_box(grid, centre, threshold).map_err(|e| match e {
            NoduleMaskError::CentreOutside { centre, shape, .. } => {
                NoduleMaskError::CentreOutside {
                    candidate,
                    centre,
                    shape,
                }
            }
            other => other,
        })?;
        let [is, rs, cs] = nodule.ranges;
        for i in is {
            for r in rs.clone() {
                let row = grid.flat([i, r, 0]);
                mask[row + cs.start..row + cs.end].fill(true);
            }
        }
    }
    Ok(mask)
}

/// The book's nodule mask (`mask_a`): the union of the candidates' boxes
/// AND `hu > threshold`, one bool per voxel in `[i][r][c]` order.
pub fn annotation_mask<T: Copy + Into<f32>>(
    grid: &HuGrid<'_, T>,
    centres: &[Irc],
    threshold: f32,
) -> Result<Vec<bool>, NoduleMaskError> {
    let mut mask = bounding_box_mask(grid, centres, threshold)?;
    for (m, &v) in mask.iter_mut().zip(grid.voxels) {
        *m = *m && v.into() > threshold;
    }
    Ok(mask)
}

/// Centre voxels of world points (mm) as the book's `xyz2irc` gives them.
pub fn centres_irc(geometry: &Geometry, centres_xyz: &[Xyz]) -> Result<Vec<Irc>, NoduleMaskError> {
    centres_xyz
        .iter()
        .enumerate()
        .map(|(candidate, &xyz)| {
            geometry
                .xyz_to_irc(xyz)
                .map_err(|source| NoduleMaskError::Geometry { candidate, source })
        })
        .collect()
}

/// [`annotation_mask`] of a scan for its positive candidates' world centres
/// (mm), at the book's threshold.
pub fn scan_annotation_mask(
    volume: &Volume,
    centres_xyz: &[Xyz],
) -> Result<Vec<bool>, NoduleMaskError> {
    let grid = HuGrid::new(&volume.voxels, volume.shape)?;
    let centres = centres_irc(&volume.geometry, centres_xyz)?;
    annotation_mask(&grid, &centres, BOOK_THRESHOLD_HU)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_index_wraps_negatives_and_refuses_past_either_end() {
        assert_eq!(python_index(0, 5), Some(0));
        assert_eq!(python_index(4, 5), Some(4));
        assert_eq!(python_index(5, 5), None);
        assert_eq!(python_index(-1, 5), Some(4));
        assert_eq!(python_index(-5, 5), Some(0));
        assert_eq!(python_index(-6, 5), None);
    }

    #[test]
    fn python_slice_matches_python_on_every_kind_of_bound() {
        // Checked against `list(range(10))[a:b]` in Python.
        assert_eq!(python_slice(2, 7, 10), 2..7);
        assert_eq!(python_slice(-2, 5, 10), 8..8); // start wraps past stop: empty
        assert_eq!(python_slice(-3, 12, 10), 7..10);
        assert_eq!(python_slice(-12, 5, 10), 0..5);
        assert_eq!(python_slice(8, 13, 10), 8..10);
        assert_eq!(python_slice(11, 13, 10), 10..10);
    }

    #[test]
    fn growth_checks_plus_before_minus_and_steps_back_on_index_error() {
        let line = |v: Vec<f32>| move |k: usize| v[k];
        // Bright everywhere: grows until c + r runs off the end, then r - 1.
        assert_eq!(grow_radius(10, 5, -700.0, line(vec![0.0; 10])), 4);
        // Dark at c + 2: stops at the start radius.
        let mut v = vec![0.0; 10];
        v[7] = -1000.0;
        assert_eq!(grow_radius(10, 5, -700.0, line(v)), 2);
        // c + 2 past the end at once: 1.
        assert_eq!(grow_radius(10, 8, -700.0, line(vec![-1000.0; 10])), 1);
        // Exactly the threshold is not above it.
        assert_eq!(grow_radius(10, 5, -700.0, line(vec![-700.0; 10])), 2);
    }
}
