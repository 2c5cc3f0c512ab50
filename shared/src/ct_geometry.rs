//! Whether a scan's geometry is one a chest CT can have. The metaimage
//! reader already refuses what cannot be mapped at all (non-finite values,
//! a spacing ≤ 0, a singular matrix); these bounds catch what maps, but
//! maps nonsense: `ElementSpacing = 1e308` puts every candidate of a scan
//! in one voxel, an origin of 1e12 mm puts them all outside it.
//!
//! The bounds are wide enough for any real CT and far from anything LUNA
//! holds: LUNA16 spacings are 0.46–0.98 mm in-plane and 0.45–2.5 mm between
//! slices; its annotation centres lie within ±1,800 mm (x −164…165,
//! y −284…271, z −790…1,790); direction cosines are unit vectors (exactly
//! ±1 and 0 in LUNA).

use crate::geometry::Geometry;

/// Smallest voxel spacing accepted (mm): 10 µm, finer than micro-CT of a
/// specimen, let alone a chest.
pub const MIN_SPACING_MM: f64 = 0.01;
/// Largest voxel spacing accepted (mm): 5 cm, coarser than any slice a
/// scanner reconstructs (thick-slab reviews stop near 10 mm).
pub const MAX_SPACING_MM: f64 = 50.0;
/// Largest absolute origin coordinate accepted (mm): 10 m from the scanner's
/// reference point, five times the farthest LUNA annotation.
pub const MAX_ABS_ORIGIN_MM: f64 = 10_000.0;
/// How far a direction column's length may be from 1: direction cosines
/// written with 6 decimals are off by ~1e-6; a scaled matrix is not a
/// direction.
pub const DIRECTION_NORM_TOLERANCE: f64 = 0.01;

/// A geometry outside the bounds above, in words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("implausible CT geometry: {0}")]
pub struct ImplausibleGeometry(pub String);

/// `Ok` when `g` is a geometry a CT scan can have (see the module docs for
/// the bounds and why).
pub fn check_ct_geometry(g: &Geometry) -> Result<(), ImplausibleGeometry> {
    let bad = |reason: String| Err(ImplausibleGeometry(reason));
    if g.spacing
        .iter()
        .any(|s| !(MIN_SPACING_MM..=MAX_SPACING_MM).contains(s))
    {
        return bad(format!(
            "spacing {:?} mm is outside [{MIN_SPACING_MM}, {MAX_SPACING_MM}] mm on some axis",
            g.spacing
        ));
    }
    if g.origin
        .iter()
        .any(|o| !o.is_finite() || o.abs() > MAX_ABS_ORIGIN_MM)
    {
        return bad(format!(
            "origin {:?} mm is more than {MAX_ABS_ORIGIN_MM} mm from 0 on some axis",
            g.origin
        ));
    }
    for axis in 0..3 {
        let norm = (0..3)
            .map(|row| g.direction[row][axis].powi(2))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() || (norm - 1.0).abs() > DIRECTION_NORM_TOLERANCE {
            return bad(format!(
                "direction of index axis {axis} has length {norm}, not 1 (direction {:?})",
                g.direction
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luna_like_geometry_passes_and_each_bound_is_enforced() {
        let luna = Geometry::new(
            [-198.1, -195.0, -335.21],
            [0.7617, 0.7617, 2.5],
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        );
        assert_eq!(check_ct_geometry(&luna), Ok(()));
        let with = |f: &dyn Fn(&mut Geometry)| {
            let mut g = luna;
            f(&mut g);
            check_ct_geometry(&g).unwrap_err().to_string()
        };
        assert!(with(&|g| g.spacing[0] = 1e308).contains("spacing"));
        assert!(with(&|g| g.spacing[2] = 0.001).contains("spacing"));
        assert!(with(&|g| g.spacing[1] = f64::NAN).contains("spacing"));
        assert!(with(&|g| g.origin[2] = 1e12).contains("origin"));
        assert!(with(&|g| g.origin[0] = f64::NAN).contains("origin"));
        assert!(with(&|g| g.direction[2][2] = 1000.0).contains("axis 2"));
    }
}
