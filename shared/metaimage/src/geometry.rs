//! World (patient millimetres, x y z) ↔ voxel index (i r c) conversion.
//!
//! Conventions follow ITK/SimpleITK, so that coordinates agree with Python
//! code reading the same scans through SimpleITK:
//! `xyz = D · (cri ⊙ spacing) + origin`, where `cri = (c, r, i)` is the index
//! in DimSize order (x fastest) and `D` is ITK's direction matrix. Volumes are
//! stored `[i][r][c]` (slowest axis first), so an `irc` is the reverse of `cri`.
//!
//! ```
//! use metaimage::geometry::Geometry;
//!
//! // x and y flipped, as in many CT scans.
//! let g = Geometry::new(
//!     [200.0, 150.0, -20.0],
//!     [0.5, 0.5, 2.0],
//!     [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
//! );
//! let xyz = g.irc_to_xyz([3.0, 10.0, 20.0]);
//! assert_eq!(xyz, [190.0, 145.0, -14.0]);
//! assert_eq!(g.xyz_to_irc(xyz)?, [3, 10, 20]);
//! # Ok::<(), metaimage::geometry::GeometryError>(())
//! ```

use serde::{Deserialize, Serialize};

/// Voxel index in array order: (slice, row, column) = (z, y, x).
pub type Irc = [i64; 3];
/// Patient coordinates in millimetres, (x, y, z).
pub type Xyz = [f64; 3];

/// Why a world point cannot be mapped to a voxel index.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum GeometryError {
    /// The direction matrix has no inverse (its determinant, |det| < 1e-12
    /// or not finite, is given).
    #[error(
        "direction matrix is singular (determinant {0:e}); cannot map world to voxel coordinates"
    )]
    SingularDirection(f64),
    /// A spacing is zero, negative, infinite or NaN (the spacing is given).
    #[error("spacing must be positive and finite, got {0:?}")]
    BadSpacing([f64; 3]),
}

/// Origin, spacing and direction of a 3-D image, all in (x, y, z) order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Geometry {
    /// World position (mm) of the centre of voxel (0, 0, 0).
    pub origin: Xyz,
    /// Distance (mm) between voxel centres along the x (column), y (row) and
    /// z (slice) index axes.
    pub spacing: Xyz,
    /// ITK direction matrix, `direction[row][col]`. Column k is the world
    /// direction of index axis k (x, y, z order).
    pub direction: [[f64; 3]; 3],
}

/// The identity direction: index axes aligned with world x, y, z.
pub const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// Zero origin, unit spacing, identity direction: what a header without
/// geometry keys means.
impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            origin: [0.0; 3],
            spacing: [1.0; 3],
            direction: IDENTITY,
        }
    }
}

impl Geometry {
    /// A geometry from its origin (mm), spacing (mm) and ITK direction
    /// matrix, all in (x, y, z) order; unchecked, as a header is until
    /// [`Geometry::xyz_to_irc`] uses it.
    pub fn new(origin: Xyz, spacing: Xyz, direction: [[f64; 3]; 3]) -> Self {
        Geometry {
            origin,
            spacing,
            direction,
        }
    }

    /// ITK's direction matrix from a header's nine row-major
    /// `TransformMatrix` values.
    ///
    /// It is the transpose, because MetaIO writes the world direction of
    /// index axis k as row k while ITK's direction matrix holds it as column
    /// k; only non-symmetric (rotated) matrices show the difference.
    pub fn direction_from_transform_matrix(m: [f64; 9]) -> [[f64; 3]; 3] {
        let mut d = [[0.0; 3]; 3];
        for (r, row) in d.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = m[c * 3 + r];
            }
        }
        d
    }

    /// The nine row-major `TransformMatrix` values to write in a header for
    /// this direction (the transpose); inverse of
    /// [`Geometry::direction_from_transform_matrix`].
    pub fn transform_matrix(&self) -> [f64; 9] {
        let mut m = [0.0; 9];
        for r in 0..3 {
            for c in 0..3 {
                m[c * 3 + r] = self.direction[r][c];
            }
        }
        m
    }

    /// Continuous voxel position (i, r, c) → world millimetres (x, y, z).
    /// Integer positions are voxel centres.
    pub fn irc_to_xyz(&self, irc: [f64; 3]) -> Xyz {
        let scaled = [
            irc[2] * self.spacing[0],
            irc[1] * self.spacing[1],
            irc[0] * self.spacing[2],
        ];
        let mut xyz = self.origin;
        for (r, out) in xyz.iter_mut().enumerate() {
            for (c, s) in scaled.iter().enumerate() {
                *out += self.direction[r][c] * s;
            }
        }
        xyz
    }

    /// World millimetres → continuous (c, r, i) index, before rounding.
    ///
    /// This is the true inverse of [`Geometry::irc_to_xyz`], as ITK's
    /// `TransformPhysicalPointToIndex` computes it: `cri = D⁻¹ · (xyz − origin)
    /// / spacing`. The shortcut `((xyz − origin) · D⁻¹) / spacing` multiplies by
    /// the transposed inverse, which agrees only for symmetric direction
    /// matrices (identity and axis flips, all that LUNA16 contains) and puts
    /// points of rotated scans in the wrong voxel.
    ///
    /// Fails when a spacing is not positive and finite or the direction matrix
    /// is singular.
    pub fn xyz_to_cri_continuous(&self, xyz: Xyz) -> Result<[f64; 3], GeometryError> {
        if self.spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(GeometryError::BadSpacing(self.spacing));
        }
        let inv = invert3(&self.direction)?;
        let delta = [
            xyz[0] - self.origin[0],
            xyz[1] - self.origin[1],
            xyz[2] - self.origin[2],
        ];
        let mut cri = [0.0; 3];
        for (r, out) in cri.iter_mut().enumerate() {
            let v: f64 = (0..3).map(|c| inv[r][c] * delta[c]).sum();
            *out = v / self.spacing[r];
        }
        Ok(cri)
    }

    /// World millimetres → nearest voxel index (i, r, c).
    ///
    /// Ties round to even, like numpy's `np.round`, so a point exactly halfway
    /// between two voxels picks the same one as numpy-based code does
    /// (`f64::round` would round it away from zero). The index may lie outside
    /// the volume; checking it is the caller's job. Errors as for
    /// [`Geometry::xyz_to_cri_continuous`].
    pub fn xyz_to_irc(&self, xyz: Xyz) -> Result<Irc, GeometryError> {
        let cri = self.xyz_to_cri_continuous(xyz)?;
        Ok([
            cri[2].round_ties_even() as i64,
            cri[1].round_ties_even() as i64,
            cri[0].round_ties_even() as i64,
        ])
    }
}

fn invert3(m: &[[f64; 3]; 3]) -> Result<[[f64; 3]; 3], GeometryError> {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let det = m[0][0] * cof(1, 2, 1, 2) - m[0][1] * cof(1, 2, 0, 2) + m[0][2] * cof(1, 2, 0, 1);
    if !det.is_finite() || det.abs() < 1e-12 {
        return Err(GeometryError::SingularDirection(det));
    }
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let mut inv = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            inv[r][c] = adj[r][c] / det;
        }
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotated() -> Geometry {
        // A rotation about z by 30° followed by a shear-free tilt: not symmetric.
        let (s, c) = (30f64.to_radians().sin(), 30f64.to_radians().cos());
        Geometry {
            origin: [-180.5, 12.25, -300.0],
            spacing: [0.7, 0.8, 2.5],
            direction: [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    #[test]
    fn identity_round_trip_matches_hand_computation() {
        let g = Geometry {
            origin: [-100.0, -50.0, 10.0],
            spacing: [0.5, 0.5, 2.0],
            direction: IDENTITY,
        };
        assert_eq!(g.irc_to_xyz([3.0, 4.0, 5.0]), [-97.5, -48.0, 16.0]);
        assert_eq!(g.xyz_to_irc([-97.5, -48.0, 16.0]).unwrap(), [3, 4, 5]);
    }

    #[test]
    fn rounding_ties_go_to_even_like_numpy() {
        let g = Geometry::default();
        // 2.5 → 2, 3.5 → 4, -0.5 → -0 (numpy), 1.5 → 2
        assert_eq!(g.xyz_to_irc([2.5, 3.5, 1.5]).unwrap(), [2, 4, 2]);
        assert_eq!(g.xyz_to_irc([-0.5, 0.5, 4.5]).unwrap(), [4, 0, 0]);
    }

    #[test]
    fn flipped_axes_invert_exactly() {
        let g = Geometry {
            origin: [200.0, 150.0, -20.0],
            spacing: [0.6, 0.6, 1.25],
            direction: [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let irc = [7, 100, 250];
        let xyz = g.irc_to_xyz([7.0, 100.0, 250.0]);
        assert_eq!(xyz, [200.0 - 150.0, 150.0 - 60.0, -20.0 + 8.75]);
        assert_eq!(g.xyz_to_irc(xyz).unwrap(), irc);
    }

    #[test]
    fn rotated_direction_uses_true_inverse_not_transposed_inverse() {
        let g = rotated();
        let irc = [11.0, 40.0, 73.0];
        let xyz = g.irc_to_xyz(irc);
        assert_eq!(g.xyz_to_irc(xyz).unwrap(), [11, 40, 73]);
        // The transposed-inverse shortcut ((xyz - origin) @ inv(D)) / spacing
        // lands elsewhere.
        let inv = invert3(&g.direction).unwrap();
        let d = [
            xyz[0] - g.origin[0],
            xyz[1] - g.origin[1],
            xyz[2] - g.origin[2],
        ];
        let shortcut_c = (0..3).map(|k| d[k] * inv[k][0]).sum::<f64>() / g.spacing[0];
        assert!(
            (shortcut_c - 73.0).abs() > 1.0,
            "transposed-inverse formula should disagree on rotations"
        );
    }

    #[test]
    fn transform_matrix_is_transposed_direction() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let d = Geometry::direction_from_transform_matrix(m);
        assert_eq!(d[0], [1.0, 4.0, 7.0]);
        let g = Geometry {
            direction: d,
            ..Geometry::default()
        };
        assert_eq!(g.transform_matrix(), m);
    }

    #[test]
    fn singular_direction_is_an_error() {
        let g = Geometry {
            direction: [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            ..Geometry::default()
        };
        assert!(matches!(
            g.xyz_to_irc([0.0; 3]),
            Err(GeometryError::SingularDirection(_))
        ));
    }
}
