//! Each component's thickest point: the voxel farthest (in millimetres)
//! from the component's edge, and how far that is. A nodule grown into a
//! vessel, or into the lung's edge, is one component whose HU-weighted
//! centre of mass lies somewhere between the two, often outside the nodule;
//! its thickest point is the nodule's centre, because a nodule is thicker
//! than the vessels beside it. `train analyze --centres thickest` adds a
//! candidate there (see [`super::components`]); `--centres balls` adds up
//! to two more, at the centres of further balls inscribed in the
//! component ([`inscribed_balls`]).
//!
//! The distance is the exact Euclidean distance transform, separable, one
//! axis at a time (Felzenszwalb and Huttenlocher's lower envelope of
//! parabolas), with the scan's spacing, inside each component's bounding
//! box padded by one unset voxel: other components count as outside. No
//! maintained crate does it (ndarray-ndimage 0.6 has no distance
//! transform; the one small crate that has one ignores spacing).

use ndarray::{s, Array3, ArrayView3, Axis};

/// A component's thickest point: `(i, r, c)` (the first such voxel in
/// `[i][r][c]` order when several tie) and its distance to the nearest
/// voxel outside the component, in millimetres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thickest {
    pub irc: [usize; 3],
    pub radius_mm: f64,
}

/// The thickest point of the set voxels of `region` (one component, the
/// rest of its bounding box unset), whose first voxel is `origin` in the
/// scan. Everything outside the region counts as outside the component.
pub fn thickest_in(region: ArrayView3<bool>, origin: [usize; 3], spacing: [f64; 3]) -> Thickest {
    let dist = squared_distances(region, spacing);
    let mut best = Thickest {
        irc: [0; 3],
        radius_mm: -1.0,
    };
    let voxels = dist.slice(inner(region));
    for (((i, r, c), &d), &set) in voxels.indexed_iter().zip(region.iter()) {
        if set && d.sqrt() > best.radius_mm {
            best = Thickest {
                irc: [origin[0] + i, origin[1] + r, origin[2] + c],
                radius_mm: d.sqrt(),
            };
        }
    }
    best
}

/// Up to `max` balls inscribed in `region` (as [`thickest_in`]'s), greedy:
/// its thickest point first, then the thickest voxel whose ball overlaps
/// none taken so far, … while a ball's radius is at least `min_radius_mm`
/// (the first is taken whatever its radius). Two nodules in one component, or
/// a nodule on a vessel beside a thicker plaque, each get a ball; a
/// vessel, thinner than `min_radius_mm`, gets none beyond the first.
pub fn inscribed_balls(
    region: ArrayView3<bool>,
    origin: [usize; 3],
    spacing: [f64; 3],
    min_radius_mm: f64,
    max: usize,
) -> Vec<Thickest> {
    let dist = squared_distances(region, spacing);
    let mut voxels: Vec<(f64, [usize; 3])> = dist
        .slice(inner(region))
        .indexed_iter()
        .zip(region.iter())
        .filter(|(_, &set)| set)
        .map(|(((i, r, c), &d), _)| (d.sqrt(), [i, r, c]))
        .collect();
    // Stable: ties keep [i][r][c] order, so the first is thickest_in's.
    voxels.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut balls: Vec<Thickest> = Vec::new();
    for (radius_mm, at) in voxels {
        if balls.len() >= max || (!balls.is_empty() && radius_mm < min_radius_mm) {
            break;
        }
        let irc = [origin[0] + at[0], origin[1] + at[1], origin[2] + at[2]];
        let inside = |b: &Thickest| {
            let d2: f64 = (0..3)
                .map(|a| ((irc[a] as f64 - b.irc[a] as f64) * spacing[a]).powi(2))
                .sum();
            d2.sqrt() <= b.radius_mm + radius_mm
        };
        if !balls.iter().any(inside) {
            balls.push(Thickest { irc, radius_mm });
        }
    }
    balls
}

/// The slice of [`squared_distances`]' output that is `region`.
fn inner(
    region: ArrayView3<bool>,
) -> ndarray::SliceInfo<[ndarray::SliceInfoElem; 3], ndarray::Ix3, ndarray::Ix3> {
    let (ni, nr, nc) = region.dim();
    s![1..ni + 1, 1..nr + 1, 1..nc + 1]
}

/// The squared distance (mm²) of each voxel of `region`, padded by one
/// unset voxel on every side (so the edge is always inside), to the
/// nearest unset voxel.
fn squared_distances(region: ArrayView3<bool>, spacing: [f64; 3]) -> Array3<f64> {
    let (ni, nr, nc) = region.dim();
    let mut dist = Array3::from_elem((ni + 2, nr + 2, nc + 2), 0.0f64);
    dist.slice_mut(inner(region))
        .zip_mut_with(&region, |d, &set| {
            if set {
                *d = f64::INFINITY;
            }
        });
    for (axis, &step) in spacing.iter().enumerate() {
        squared_distance_along(&mut dist, Axis(axis), step);
    }
    dist
}

/// One pass of the separable transform: each line along `axis` becomes the
/// lower envelope of the parabolas rooted at its values.
fn squared_distance_along(dist: &mut Array3<f64>, axis: Axis, step: f64) {
    let mut line = Vec::new();
    let mut envelope = Vec::new();
    for mut lane in dist.lanes_mut(axis) {
        line.clear();
        line.extend(lane.iter().copied());
        lower_envelope(&line, step, &mut envelope);
        if envelope.is_empty() {
            lane.fill(f64::INFINITY);
            continue;
        }
        // x only grows along the line, so the parabola in force only moves on.
        let mut k = 0;
        for (p, out) in lane.iter_mut().enumerate() {
            let x = p as f64 * step;
            while k + 1 < envelope.len() && envelope[k + 1].1 <= x {
                k += 1;
            }
            let q = envelope[k].0;
            let dx = x - q as f64 * step;
            *out = dx * dx + line[q];
        }
    }
}

/// The parabolas `(x - q·step)² + f[q]` of the finite `f[q]` that are
/// lowest somewhere, with where each starts to be: `(q, from_x)`.
fn lower_envelope(f: &[f64], step: f64, envelope: &mut Vec<(usize, f64)>) {
    envelope.clear();
    for (q, &fq) in f.iter().enumerate() {
        if !fq.is_finite() {
            continue;
        }
        let xq = q as f64 * step;
        let mut from = f64::NEG_INFINITY;
        while let Some(&(p, from_p)) = envelope.last() {
            let xp = p as f64 * step;
            from = ((fq + xq * xq) - (f[p] + xp * xp)) / (2.0 * (xq - xp));
            if from > from_p {
                break;
            }
            envelope.pop();
            from = f64::NEG_INFINITY;
        }
        envelope.push((q, from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`thickest_in`] of each label 1..=count of a label volume (each
    /// label's box cut out, the other labels in it unset).
    fn thickest_points(
        labels: ArrayView3<u32>,
        count: usize,
        spacing_irc: [f64; 3],
    ) -> Vec<Thickest> {
        bounding_boxes(labels, count)
            .into_iter()
            .zip(1u32..)
            .map(|([bi, br, bc], label)| {
                let region = labels.slice(s![bi[0]..=bi[1], br[0]..=br[1], bc[0]..=bc[1]]);
                let own = region.mapv(|l| l == label);
                thickest_in(own.view(), [bi[0], br[0], bc[0]], spacing_irc)
            })
            .collect()
    }

    /// Per label, the inclusive `[lo, hi]` of its voxels along each axis.
    fn bounding_boxes(labels: ArrayView3<u32>, count: usize) -> Vec<[[usize; 2]; 3]> {
        let mut boxes = vec![[[usize::MAX, 0]; 3]; count];
        for ((i, r, c), &l) in labels.indexed_iter() {
            if l == 0 {
                continue;
            }
            let b = &mut boxes[l as usize - 1];
            for (axis, at) in [i, r, c].into_iter().enumerate() {
                b[axis] = [b[axis][0].min(at), b[axis][1].max(at)];
            }
        }
        boxes
    }

    /// The transform by brute force: each set voxel's distance to the
    /// nearest unset one (the padding included).
    fn brute(mask: &Array3<bool>, spacing: [f64; 3]) -> Array3<f64> {
        let (ni, nr, nc) = mask.dim();
        let mut out = Array3::from_elem((ni, nr, nc), 0.0);
        for ((i, r, c), &m) in mask.indexed_iter() {
            if !m {
                continue;
            }
            let mut best = f64::INFINITY;
            for ii in -1..=ni as i64 {
                for rr in -1..=nr as i64 {
                    for cc in -1..=nc as i64 {
                        let set = ii >= 0
                            && rr >= 0
                            && cc >= 0
                            && (ii as usize) < ni
                            && (rr as usize) < nr
                            && (cc as usize) < nc
                            && mask[[ii as usize, rr as usize, cc as usize]];
                        if !set {
                            let d = [ii - i as i64, rr - r as i64, cc - c as i64];
                            let d2: f64 = (0..3).map(|a| (d[a] as f64 * spacing[a]).powi(2)).sum();
                            best = best.min(d2);
                        }
                    }
                }
            }
            out[[i, r, c]] = best.sqrt();
        }
        out
    }

    #[test]
    fn the_transform_equals_brute_force_with_anisotropic_spacing() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let mask = Array3::from_shape_fn((6, 7, 8), |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            !state.is_multiple_of(5)
        });
        let spacing = [2.5, 0.7, 0.8];
        let labels = mask.mapv(u32::from);
        let dims = [8, 9, 10];
        let mut dist = Array3::from_elem((dims[0], dims[1], dims[2]), 0.0);
        for ((i, r, c), &m) in mask.indexed_iter() {
            if m {
                dist[[i + 1, r + 1, c + 1]] = f64::INFINITY;
            }
        }
        for (axis, &step) in spacing.iter().enumerate() {
            squared_distance_along(&mut dist, Axis(axis), step);
        }
        let want = brute(&mask, spacing);
        for ((i, r, c), &w) in want.indexed_iter() {
            let got = dist[[i + 1, r + 1, c + 1]].sqrt();
            assert!((got - w).abs() < 1e-9, "({i},{r},{c}): {got} vs {w}");
        }
        let t = thickest_points(labels.view(), 1, spacing)[0];
        let max = want.iter().cloned().fold(0.0, f64::max);
        assert!((t.radius_mm - max).abs() < 1e-9, "{t:?} vs {max}");
        assert!(
            (want[t.irc] - max).abs() < 1e-9,
            "{t:?} is not a farthest voxel"
        );
    }

    #[test]
    fn a_ball_on_a_rod_is_thickest_at_the_balls_centre() {
        // A rod of radius 1 along c, and a ball of radius 4 centred at
        // (10, 10, 30) on it: the centre of mass is pulled along the rod,
        // the thickest point is the ball's centre.
        let labels = Array3::from_shape_fn((21, 21, 60), |(i, r, c)| {
            let (di, dr, dc) = (i as f64 - 10.0, r as f64 - 10.0, c as f64 - 30.0);
            let rod = di * di + dr * dr <= 1.0 && c >= 2;
            let ball = di * di + dr * dr + dc * dc <= 16.0;
            u32::from(rod || ball)
        });
        let t = thickest_points(labels.view(), 1, [1.0, 1.0, 1.0])[0];
        assert_eq!(t.irc, [10, 10, 30]);
        assert!(t.radius_mm > 4.0 && t.radius_mm <= 5.0, "{t:?}");
        // The first inscribed ball is the thickest point; the rod, of
        // radius ~1.4, is under 2 mm everywhere: no other. At 1 mm the
        // rod gets balls too, none inside the first.
        let own = labels.mapv(|l| l == 1);
        let balls = |min| inscribed_balls(own.view(), [0; 3], [1.0; 3], min, 5);
        assert_eq!(balls(2.0), [t]);
        let thin = balls(1.0);
        assert_eq!((thin.len(), thin[0]), (5, t));
        for b in &thin[1..] {
            let apart = (b.irc[2] as f64 - 30.0).abs();
            assert!(b.radius_mm < 2.0 && apart > t.radius_mm, "{b:?}");
        }
    }

    #[test]
    fn each_label_is_measured_alone() {
        // Two touching blocks with different labels: each one's edge is
        // where the other begins.
        let labels = Array3::from_shape_fn((5, 5, 10), |(_, _, c)| if c < 5 { 1 } else { 2 });
        let t = thickest_points(labels.view(), 2, [1.0, 1.0, 1.0]);
        assert_eq!(t[0].irc, [2, 2, 2]);
        assert_eq!(t[1].irc, [2, 2, 7]);
        assert_eq!(t[0].radius_mm, 3.0);
    }
}
