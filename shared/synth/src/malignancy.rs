//! Synthetic malignancy labels for `annotations_with_malignancy.csv`, the
//! file the book's chapter 14 trains its malignancy classifier on.
//!
//! A label must be learnable from what a model sees in the 32×48×48 crop
//! around a nodule, so it is a function of the nodule's painted shape only:
//! its size and how bumpy its margin is (see [`is_malignant`]). Nothing here
//! draws a random number: labels, reader ratings and boxes follow from the
//! nodule as generated, so adding them left every other output of a seed
//! byte for byte as it was.

use std::f64::consts::{PI, TAU};

use shared::geometry::{Geometry, Xyz};

use super::anatomy::{Grid, Nodule};
use super::sample::{add, V3};

/// Nodules at least this wide (mm) are malignant: size is the strongest
/// malignancy sign radiologists use, and the crop shows it plainly.
pub const MALIGNANT_DIAMETER_MM: f64 = 10.0;

/// Nodules whose margin bumps reach at least this far (mm) out of the
/// smooth ellipsoid are malignant too, whatever their size: a lobulated
/// margin is the other classic sign.
pub const MALIGNANT_BUMP_MM: f64 = 0.2;

/// Readers per nodule in `mal_details`.
pub const READERS: usize = 4;

/// The malignancy rule of the synthetic data: a nodule is malignant iff it
/// is large, `diameter_mm >= MALIGNANT_DIAMETER_MM` (10 mm), or its margin
/// is lobulated, `bump_mm >= MALIGNANT_BUMP_MM` (0.2 mm).
///
/// `bump_mm` is the height of the margin's bumps: the nodule's
/// `lobulation` (a fraction, 0–0.08) times its mean semi-axis, which is how
/// far the painted surface moves in and out of the smooth ellipsoid (see
/// `Nodule::bump_mm`). It is measured in millimetres rather than as the
/// bare fraction because that is what shows in the crop: at 0.2 mm the
/// surface shifts by a quarter of the 0.8 mm partial-volume edge, some
/// 200 HU on border voxels against 20 HU of noise, while a small nodule's
/// bumps of the same fraction move it far less. A nodule under 4.4 mm
/// is therefore always benign (its bumps reach at most 0.08 × 1.12 of
/// its radius, under 0.2 mm).
///
/// On the tiny preset about a third of the nodules come out malignant
/// (31–35% over 40 series for seeds 1, 2, 3 and 7), the larger part for
/// their size, the rest for their margin alone.
pub fn is_malignant(diameter_mm: f64, bump_mm: f64) -> bool {
    diameter_mm >= MALIGNANT_DIAMETER_MM || bump_mm >= MALIGNANT_BUMP_MM
}

/// `READERS` synthetic LIDC-style malignancy ratings (1–5) for a nodule,
/// made from the same features as [`is_malignant`] so that their mean is at
/// least 3 iff it is malignant.
///
/// With `s = max(diameter / 10 mm, bump / 0.2 mm)`, how far the nodule is
/// past either threshold (`s >= 1` iff malignant), the consensus rating is
/// 3, 4 or 5 for a malignant nodule (`s` under 1.25, under 1.6, above) and
/// 2 or 1 for a benign one (`s` at least 0.7 or not). Near the threshold
/// (`0.75 <= s < 1.5`, consensus 2 to 4) the readers disagree: one rates
/// a point higher and one a point lower, so the mean is the consensus and
/// every rating stays within 1–5. Which reader says what rotates with the
/// nodule's `phase`, so the list is not always in the same order.
pub fn reader_ratings(diameter_mm: f64, bump_mm: f64, phase: f64) -> [u8; READERS] {
    let s = (diameter_mm / MALIGNANT_DIAMETER_MM).max(bump_mm / MALIGNANT_BUMP_MM);
    let consensus: i32 = if is_malignant(diameter_mm, bump_mm) {
        3 + i32::from(s >= 1.25) + i32::from(s >= 1.6)
    } else {
        1 + i32::from(s >= 0.7)
    };
    let spread = i32::from((0.75..1.5).contains(&s));
    let mut ratings = [spread, 0, -spread, 0].map(|d| (consensus + d).clamp(1, 5) as u8);
    let turn = ((phase.rem_euclid(TAU) / TAU) * READERS as f64) as usize % READERS;
    ratings.rotate_left(turn);
    ratings
}

/// What `annotations_with_malignancy.csv` adds to one annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct NoduleMalignancy {
    /// The annotation's diameter, as in annotations.csv.
    pub diameter_mm: f64,
    /// Height of the margin's bumps, see [`is_malignant`].
    pub bump_mm: f64,
    /// [`is_malignant`] of the two.
    pub malignant: bool,
    /// [`reader_ratings`]: `mal_details`.
    pub ratings: [u8; READERS],
    /// The nodule's box in world millimetres, low and high corner (x, y, z).
    pub bbox_low_xyz: Xyz,
    pub bbox_high_xyz: Xyz,
}

impl Nodule {
    /// How far (mm) the margin's bumps move the surface in and out of the
    /// smooth ellipsoid: `lobulation` times the mean semi-axis, as
    /// `Anatomy::paint_nodule` paints it.
    pub fn bump_mm(&self) -> f64 {
        self.lobulation * (self.semi[0] * self.semi[1] * self.semi[2]).cbrt()
    }

    /// The nodule's box in the grid frame (low, high corner): the extremes
    /// of its painted surface (where coverage is one half) over a dense set
    /// of directions, so the bumps count where they stick out.
    pub fn grid_box(&self) -> (V3, V3) {
        const POLAR: usize = 90;
        const AZIMUTH: usize = 180;
        let (sin_t, cos_t) = self.theta.sin_cos();
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for p in 0..=POLAR {
            let (sin_p, cos_p) = (PI * p as f64 / POLAR as f64).sin_cos();
            for a in 0..AZIMUTH {
                let (sin_a, cos_a) = (TAU * a as f64 / AZIMUTH as f64).sin_cos();
                // A unit direction in the nodule's normalised frame, and the
                // surface (coverage one half) along it.
                let u = [sin_p * cos_a, sin_p * sin_a, cos_p];
                let q = self.bumps(u);
                let (ex, ey, ez) = (
                    q * u[0] * self.semi[0],
                    q * u[1] * self.semi[1],
                    q * u[2] * self.semi[2],
                );
                // Back from the nodule's own axes to the grid frame.
                let d = [cos_t * ex - sin_t * ey, sin_t * ex + cos_t * ey, ez];
                for k in 0..3 {
                    lo[k] = lo[k].min(d[k]);
                    hi[k] = hi[k].max(d[k]);
                }
            }
        }
        (add(self.center, lo), add(self.center, hi))
    }

    /// Label, ratings and world box of this nodule in a scan of `grid`
    /// placed by `geometry`.
    pub fn malignancy(&self, grid: &Grid, geometry: &Geometry) -> NoduleMalignancy {
        let bump_mm = self.bump_mm();
        let (lo, hi) = self.grid_box();
        // Flipped axes swap the corners, so take the extremes of all eight.
        let mut bbox_low_xyz = [f64::INFINITY; 3];
        let mut bbox_high_xyz = [f64::NEG_INFINITY; 3];
        for corner in 0..8 {
            let p = [0, 1, 2].map(|k| if corner >> k & 1 == 0 { lo[k] } else { hi[k] });
            let xyz = geometry.irc_to_xyz(grid.irc(p));
            for k in 0..3 {
                bbox_low_xyz[k] = bbox_low_xyz[k].min(xyz[k]);
                bbox_high_xyz[k] = bbox_high_xyz[k].max(xyz[k]);
            }
        }
        NoduleMalignancy {
            diameter_mm: self.diameter_mm,
            bump_mm,
            malignant: is_malignant(self.diameter_mm, bump_mm),
            ratings: reader_ratings(self.diameter_mm, bump_mm, self.phase),
            bbox_low_xyz,
            bbox_high_xyz,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodule(theta: f64, lobulation: f64, phase: f64) -> Nodule {
        Nodule {
            center: [20.0, 21.0, 22.0],
            diameter_mm: 9.0,
            semi: [4.9, 4.1, 4.5],
            theta,
            lobulation,
            phase,
            hu: 50.0,
        }
    }

    #[test]
    fn rule_thresholds() {
        assert!(is_malignant(MALIGNANT_DIAMETER_MM, 0.0));
        assert!(is_malignant(4.0, MALIGNANT_BUMP_MM));
        assert!(!is_malignant(9.99, 0.199));
        assert!(!is_malignant(3.0, 0.0));
    }

    #[test]
    fn ratings_mean_at_least_three_iff_malignant() {
        for d in (0..600).map(|k| 2.0 + 0.05 * f64::from(k)) {
            for bump in (0..150).map(|k| 0.005 * f64::from(k)) {
                for phase in [0.0, 1.0, 2.5, 4.0, 6.0] {
                    let r = reader_ratings(d, bump, phase);
                    assert!(r.iter().all(|v| (1..=5).contains(v)), "{r:?}");
                    let mean = r.iter().map(|v| f64::from(*v)).sum::<f64>() / READERS as f64;
                    assert_eq!(
                        mean >= 3.0,
                        is_malignant(d, bump),
                        "d {d} bump {bump} {r:?}"
                    );
                }
            }
        }
        // Borderline nodules split the readers; clear-cut ones do not.
        assert_eq!(reader_ratings(10.5, 0.0, 0.0), [4, 3, 2, 3]);
        assert_eq!(reader_ratings(20.0, 0.0, 0.0), [5; READERS]);
        assert_eq!(reader_ratings(4.0, 0.0, 0.0), [1; READERS]);
    }

    /// The box is the extent of the voxels the nodule fills more than half:
    /// every such point lies in it, and they reach each of its faces.
    #[test]
    fn grid_box_is_the_extent_of_the_painted_nodule() {
        for (theta, lobulation, phase) in [(0.0, 0.0, 0.0), (0.7, 0.08, 1.3), (2.2, 0.05, 4.0)] {
            let n = nodule(theta, lobulation, phase);
            let (lo, hi) = n.grid_box();
            let step = 0.1;
            let mut seen_lo = [f64::INFINITY; 3];
            let mut seen_hi = [f64::NEG_INFINITY; 3];
            let steps = |k: usize| ((hi[k] - lo[k] + 2.0) / step) as usize;
            for a in 0..steps(0) {
                for b in 0..steps(1) {
                    for c in 0..steps(2) {
                        let p = [
                            lo[0] - 1.0 + step * a as f64,
                            lo[1] - 1.0 + step * b as f64,
                            lo[2] - 1.0 + step * c as f64,
                        ];
                        if n.coverage(p) > 0.5 {
                            for k in 0..3 {
                                seen_lo[k] = seen_lo[k].min(p[k]);
                                seen_hi[k] = seen_hi[k].max(p[k]);
                            }
                        }
                    }
                }
            }
            for k in 0..3 {
                assert!(seen_lo[k] >= lo[k] - 0.01 && seen_hi[k] <= hi[k] + 0.01);
                assert!(
                    seen_lo[k] - lo[k] < 1.5 * step,
                    "axis {k}: {seen_lo:?} {lo:?}"
                );
                assert!(
                    hi[k] - seen_hi[k] < 1.5 * step,
                    "axis {k}: {seen_hi:?} {hi:?}"
                );
            }
        }
    }

    #[test]
    fn world_box_holds_the_centre_in_flipped_scans_too() {
        let grid = Grid {
            shape: [40, 64, 64],
            spacing: [0.75, 0.75, 2.0],
        };
        let n = nodule(0.7, 0.08, 1.3);
        for direction in [
            shared::geometry::IDENTITY,
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        ] {
            let geometry = Geometry::new([-30.0, 40.0, -200.0], grid.spacing, direction);
            let m = n.malignancy(&grid, &geometry);
            let centre = geometry.irc_to_xyz(grid.irc(n.center));
            let (lo, hi) = n.grid_box();
            for k in 0..3 {
                assert!(m.bbox_low_xyz[k] < centre[k] && centre[k] < m.bbox_high_xyz[k]);
                let width = m.bbox_high_xyz[k] - m.bbox_low_xyz[k];
                assert!((width - (hi[k] - lo[k])).abs() < 1e-9, "axis {k}");
            }
            assert_eq!(m.malignant, is_malignant(n.diameter_mm, n.bump_mm()));
        }
    }
}
