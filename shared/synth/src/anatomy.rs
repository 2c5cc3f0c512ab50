//! A crude chest: body ellipse with a fat layer, spine, two lungs, vessel
//! trees and nodules, painted into an int16 HU grid.
//!
//! Shapes live in the grid frame (millimetres along c, r, i; see
//! [`V3`]) so they are round in millimetres whatever the spacing. Each
//! object paints only its bounding box, and blends with the tissue under
//! it by `max`, which makes the result independent of painting order.

use rand_chacha::ChaCha8Rng;

use super::sample::{
    add, dot, norm, normal, normalize, perpendicular, scale, sub, uniform, unit_vector, V3,
};
use rand::Rng;

pub const AIR_HU: f32 = -1000.0;
/// Reconstruction padding outside the scanner's circular field of view, as
/// in many LUNA scans; the reader's clip maps it to -1000.
pub const OUTSIDE_FOV_HU: i16 = -2048;
const FAT_HU: f32 = -100.0;
const TISSUE_HU: f32 = 30.0;
const BONE_HU: f32 = 450.0;
const LUNG_HU: f32 = -860.0;
/// Width (mm) of the partial-volume ramp at object borders.
const EDGE_MM: f64 = 0.8;

/// Voxel grid: shape (i, r, c) and spacing (x, y, z) millimetres.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub shape: [usize; 3],
    pub spacing: V3,
}

impl Grid {
    pub fn extent(&self) -> V3 {
        [
            self.shape[2] as f64 * self.spacing[0],
            self.shape[1] as f64 * self.spacing[1],
            self.shape[0] as f64 * self.spacing[2],
        ]
    }

    pub fn mm(&self, i: usize, r: usize, c: usize) -> V3 {
        [
            c as f64 * self.spacing[0],
            r as f64 * self.spacing[1],
            i as f64 * self.spacing[2],
        ]
    }

    /// Continuous (i, r, c) of a grid-frame point.
    pub fn irc(&self, p: V3) -> [f64; 3] {
        [
            p[2] / self.spacing[2],
            p[1] / self.spacing[1],
            p[0] / self.spacing[0],
        ]
    }

    /// Index ranges (i, r, c), end exclusive, of the voxels in the box.
    fn index_box(&self, lo: V3, hi: V3) -> [std::ops::Range<usize>; 3] {
        let range = |axis_mm: usize, axis_irc: usize| {
            let s = self.spacing[axis_mm];
            let n = self.shape[axis_irc];
            let a = (lo[axis_mm] / s).floor().max(0.0) as usize;
            let b = ((hi[axis_mm] / s).ceil() + 1.0).clamp(0.0, n as f64) as usize;
            a.min(b)..b
        };
        [range(2, 0), range(1, 1), range(0, 2)]
    }
}

/// One lung: an elliptic cylinder whose cross-section shrinks towards both
/// ends (apex and diaphragm).
#[derive(Debug, Clone, Copy)]
pub struct Lung {
    pub cx: f64,
    pub cy: f64,
    pub ax: f64,
    pub by: f64,
    pub z0: f64,
    pub z1: f64,
    /// -1 for the lung at low x, +1 at high x: the lateral direction.
    pub side: f64,
}

impl Lung {
    pub fn scale_at(&self, z: f64) -> f64 {
        if z <= self.z0 || z >= self.z1 {
            return 0.0;
        }
        let t = 2.0 * (z - self.z0) / (self.z1 - self.z0) - 1.0;
        (1.0 - t.powi(4)).sqrt()
    }

    /// Normalised radius at `p`: < 1 inside, infinite outside the z range.
    pub fn q(&self, p: V3) -> f64 {
        let f = self.scale_at(p[2]);
        if f <= 0.0 {
            return f64::INFINITY;
        }
        let dx = (p[0] - self.cx) / (self.ax * f);
        let dy = (p[1] - self.cy) / (self.by * f);
        (dx * dx + dy * dy).sqrt()
    }

    pub fn contains(&self, p: V3) -> bool {
        self.q(p) < 1.0
    }

    pub fn random_point(&self, rng: &mut ChaCha8Rng, q_max: f64) -> V3 {
        // Rejection sampling in the bounding box; the lung fills ~60% of it.
        for _ in 0..200 {
            let p = [
                uniform(rng, self.cx - self.ax, self.cx + self.ax),
                uniform(rng, self.cy - self.by, self.cy + self.by),
                uniform(rng, self.z0, self.z1),
            ];
            if self.q(p) < q_max {
                return p;
            }
        }
        [self.cx, self.cy, 0.5 * (self.z0 + self.z1)]
    }

    /// A point just inside the pleura, plus the in-plane outward normal.
    pub fn surface_point(&self, rng: &mut ChaCha8Rng, z_lo: f64, z_hi: f64) -> (V3, V3) {
        let z = uniform(rng, z_lo, z_hi);
        let f = self.scale_at(z).max(0.05);
        let phi = uniform(rng, 0.0, std::f64::consts::TAU);
        let p = [
            self.cx + self.ax * f * phi.cos(),
            self.cy + self.by * f * phi.sin(),
            z,
        ];
        let n = normalize([phi.cos() / self.ax, phi.sin() / self.by, 0.0]);
        (p, n)
    }
}

/// Body, spine and lungs: everything that is not a vessel or nodule.
#[derive(Debug, Clone)]
pub struct Anatomy {
    pub grid: Grid,
    body: (f64, f64, f64, f64),
    spine: (f64, f64, f64),
    pub lungs: [Lung; 2],
    /// Radius of the circular field of view, when the scan has one.
    fov_radius: Option<f64>,
}

impl Anatomy {
    pub fn new(rng: &mut ChaCha8Rng, grid: Grid) -> Anatomy {
        let [w, h, depth] = grid.extent();
        let cx = w * uniform(rng, 0.47, 0.53);
        let cy = h * uniform(rng, 0.47, 0.53);
        let a = w * uniform(rng, 0.40, 0.45);
        let b = h * uniform(rng, 0.30, 0.35);
        let z0 = depth * uniform(rng, 0.02, 0.10);
        let z1 = depth * uniform(rng, 0.90, 0.98);
        let lung = |side: f64, rng: &mut ChaCha8Rng| Lung {
            cx: cx + side * a * uniform(rng, 0.46, 0.50),
            cy: cy - 0.05 * b,
            ax: a * uniform(rng, 0.31, 0.34),
            by: b * uniform(rng, 0.62, 0.68),
            z0,
            z1,
            side,
        };
        let lungs = [lung(-1.0, rng), lung(1.0, rng)];
        let fov_radius = (rng.random::<f64>() < 0.5).then(|| 0.5 * w.min(h));
        Anatomy {
            grid,
            body: (cx, cy, a, b),
            spine: (cx, cy + 0.8 * b, 0.1 * a),
            lungs,
            fov_radius,
        }
    }

    pub fn in_body(&self, p: V3) -> bool {
        self.body_q(p) < 1.0
    }

    fn body_q(&self, p: V3) -> f64 {
        let (cx, cy, a, b) = self.body;
        let dx = (p[0] - cx) / a;
        let dy = (p[1] - cy) / b;
        dx * dx + dy * dy
    }

    pub fn lung_at(&self, p: V3) -> Option<&Lung> {
        self.lungs.iter().find(|l| l.contains(p))
    }

    /// HU of the tissue at `p` before vessels, nodules and noise.
    pub fn base_hu(&self, p: V3) -> f32 {
        let q = self.body_q(p);
        if q >= 1.0 {
            return AIR_HU;
        }
        if self.lung_at(p).is_some() {
            return LUNG_HU;
        }
        let (sx, sy, sr) = self.spine;
        if (p[0] - sx).powi(2) + (p[1] - sy).powi(2) < sr * sr {
            return BONE_HU;
        }
        if q > 0.81 {
            return FAT_HU;
        }
        TISSUE_HU
    }

    pub fn in_fov(&self, p: V3) -> bool {
        let Some(r) = self.fov_radius else {
            return true;
        };
        let [w, h, _] = self.grid.extent();
        (p[0] - 0.5 * w).powi(2) + (p[1] - 0.5 * h).powi(2) < r * r
    }

    /// Fill the whole grid with the base tissue.
    pub fn paint_base(&self, hu: &mut [i16]) {
        let [ni, nr, nc] = self.grid.shape;
        for i in 0..ni {
            for r in 0..nr {
                let row = &mut hu[(i * nr + r) * nc..(i * nr + r + 1) * nc];
                for (c, v) in row.iter_mut().enumerate() {
                    *v = self.base_hu(self.grid.mm(i, r, c)) as i16;
                }
            }
        }
    }

    /// Blend `target` into the voxels of a box with coverage from `coverage(p)`
    /// (0 outside, 1 fully inside), keeping the brighter of old and new.
    fn paint(&self, hu: &mut [i16], lo: V3, hi: V3, target: f32, coverage: impl Fn(V3) -> f64) {
        let [ri, rr, rc] = self.grid.index_box(lo, hi);
        let [_, nr, nc] = self.grid.shape;
        for i in ri {
            for r in rr.clone() {
                for c in rc.clone() {
                    let p = self.grid.mm(i, r, c);
                    let cov = coverage(p);
                    if cov <= 0.0 {
                        continue;
                    }
                    let base = self.base_hu(p);
                    let v = (base + (target - base) * cov as f32).round() as i16;
                    let slot = &mut hu[(i * nr + r) * nc + c];
                    *slot = (*slot).max(v);
                }
            }
        }
    }

    pub fn paint_segment(&self, hu: &mut [i16], s: &Segment) {
        let pad = s.ra.max(s.rb) + EDGE_MM;
        let lo = [
            s.a[0].min(s.b[0]) - pad,
            s.a[1].min(s.b[1]) - pad,
            s.a[2].min(s.b[2]) - pad,
        ];
        let hi = [
            s.a[0].max(s.b[0]) + pad,
            s.a[1].max(s.b[1]) + pad,
            s.a[2].max(s.b[2]) + pad,
        ];
        let ab = sub(s.b, s.a);
        let len2 = dot(ab, ab).max(1e-12);
        self.paint(hu, lo, hi, s.hu, |p| {
            let t = (dot(sub(p, s.a), ab) / len2).clamp(0.0, 1.0);
            let d = norm(sub(p, add(s.a, scale(ab, t))));
            let radius = s.ra + (s.rb - s.ra) * t;
            ((radius - d) / EDGE_MM + 0.5).clamp(0.0, 1.0)
        });
    }

    pub fn paint_nodule(&self, hu: &mut [i16], n: &Nodule) {
        let reach = n.semi.iter().cloned().fold(0.0, f64::max) * (1.0 + n.lobulation) + EDGE_MM;
        let lo = sub(n.center, [reach; 3]);
        let hi = add(n.center, [reach; 3]);
        self.paint(hu, lo, hi, n.hu, |p| n.coverage(p));
    }
}

/// A tapered tube from `a` (radius `ra`) to `b` (radius `rb`).
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub a: V3,
    pub b: V3,
    pub ra: f64,
    pub rb: f64,
    pub hu: f32,
}

/// Vessel trees: segments plus the places where vessels branch or cross,
/// which look most like nodules and so make good hard negatives.
#[derive(Debug, Clone, Default)]
pub struct Vessels {
    pub segments: Vec<Segment>,
    pub junctions: Vec<V3>,
}

pub struct VesselParams {
    pub trees_per_lung: usize,
    pub root_radius: (f64, f64),
    pub crossings_per_lung: usize,
}

const STEP_MM: f64 = 2.5;
const MIN_RADIUS_MM: f64 = 0.6;
const MAX_SEGMENTS_PER_TREE: usize = 400;

pub fn grow_vessels(rng: &mut ChaCha8Rng, anatomy: &Anatomy, params: &VesselParams) -> Vessels {
    let mut vessels = Vessels::default();
    for lung in &anatomy.lungs {
        let span = lung.z1 - lung.z0;
        for _ in 0..params.trees_per_lung {
            let z = lung.z0 + span * uniform(rng, 0.25, 0.75);
            let f = lung.scale_at(z);
            let root = [
                lung.cx - lung.side * lung.ax * f * uniform(rng, 0.5, 0.75),
                lung.cy + lung.by * f * uniform(rng, -0.3, 0.3),
                z,
            ];
            let dir = normalize([lung.side, 0.6 * normal(rng), 0.9 * normal(rng)]);
            let hu = uniform(rng, 25.0, 60.0) as f32;
            let radius = uniform(rng, params.root_radius.0, params.root_radius.1);
            grow_tree(rng, lung, root, dir, radius, hu, &mut vessels);
        }
        add_crossings(rng, lung, params.crossings_per_lung, &mut vessels);
    }
    vessels
}

fn grow_tree(
    rng: &mut ChaCha8Rng,
    lung: &Lung,
    root: V3,
    dir: V3,
    radius: f64,
    hu: f32,
    out: &mut Vessels,
) {
    let mut branches = vec![(root, dir, radius)];
    let mut budget = MAX_SEGMENTS_PER_TREE;
    while let Some((mut p, mut d, mut r)) = branches.pop() {
        while budget > 0 && r >= MIN_RADIUS_MM {
            d = normalize(add(d, scale(unit_vector(rng), 0.25)));
            let next = add(p, scale(d, STEP_MM));
            if !lung.contains(next) {
                break;
            }
            let mut r_next = r * 0.985;
            if rng.random::<f64>() < 0.07 {
                let angle = uniform(rng, 0.5, 1.0);
                let child = normalize(add(
                    scale(d, angle.cos()),
                    scale(perpendicular(rng, d), angle.sin()),
                ));
                branches.push((next, child, r_next * 0.75));
                out.junctions.push(next);
                r_next *= 0.9;
            }
            out.segments.push(Segment {
                a: p,
                b: next,
                ra: r,
                rb: r_next,
                hu,
            });
            budget -= 1;
            p = next;
            r = r_next;
        }
    }
}

/// Short straight vessels laid across existing ones.
fn add_crossings(rng: &mut ChaCha8Rng, lung: &Lung, count: usize, out: &mut Vessels) {
    let in_lung: Vec<Segment> = out
        .segments
        .iter()
        .filter(|s| lung.contains(s.a))
        .cloned()
        .collect();
    if in_lung.is_empty() {
        return;
    }
    for _ in 0..count {
        let s = in_lung[rng.random_range(0..in_lung.len())];
        let at = add(s.a, scale(sub(s.b, s.a), 0.5));
        let d = perpendicular(rng, sub(s.b, s.a));
        let half = uniform(rng, 5.0, 12.0);
        let r = uniform(rng, 0.8, s.ra.clamp(0.9, 1.8));
        let hu = uniform(rng, 25.0, 60.0) as f32;
        let steps = (2.0 * half / STEP_MM).ceil() as usize;
        let start = sub(at, scale(d, half));
        for k in 0..steps {
            let a = add(start, scale(d, k as f64 * STEP_MM));
            let b = add(a, scale(d, STEP_MM));
            if lung.contains(a) && lung.contains(b) {
                out.segments.push(Segment {
                    a,
                    b,
                    ra: r,
                    rb: r,
                    hu,
                });
            }
        }
        out.junctions.push(at);
    }
}

/// An ellipsoid with a bumpy surface.
#[derive(Debug, Clone, Copy)]
pub struct Nodule {
    pub center: V3,
    pub diameter_mm: f64,
    pub semi: V3,
    /// Rotation of the ellipsoid about z.
    pub theta: f64,
    pub lobulation: f64,
    pub phase: f64,
    pub hu: f32,
}

impl Nodule {
    /// How much of the voxel at `p` the nodule fills, 0 to 1: a ramp
    /// `EDGE_MM` wide across its bumpy surface, one half on the surface.
    pub fn coverage(&self, p: V3) -> f64 {
        let (sin, cos) = self.theta.sin_cos();
        let d = sub(p, self.center);
        // Rotate into the nodule's own axes (about z) and normalise.
        let u = [
            (cos * d[0] + sin * d[1]) / self.semi[0],
            (-sin * d[0] + cos * d[1]) / self.semi[1],
            d[2] / self.semi[2],
        ];
        let q = norm(u);
        let bumps = if q > 1e-9 {
            let (ux, uy, uz) = (u[0] / q, u[1] / q, u[2] / q);
            self.bumps([ux, uy, uz])
        } else {
            1.0
        };
        let mean_semi = (self.semi[0] * self.semi[1] * self.semi[2]).cbrt();
        ((bumps - q) * mean_semi / EDGE_MM + 0.5).clamp(0.0, 1.0)
    }

    /// The surface's normalised radius along the unit direction `u` of
    /// the nodule's own (normalised) frame: 1 for the smooth ellipsoid,
    /// `1 ± lobulation` at the bumps.
    pub fn bumps(&self, u: V3) -> f64 {
        1.0 + self.lobulation * (3.0 * u[0] + self.phase).sin() * (2.0 * u[1] + 3.0 * u[2]).cos()
    }

    pub fn random(rng: &mut ChaCha8Rng, center: V3, diameter_mm: f64) -> Nodule {
        let r = 0.5 * diameter_mm;
        Nodule {
            center,
            diameter_mm,
            semi: [
                r * uniform(rng, 0.88, 1.12),
                r * uniform(rng, 0.88, 1.12),
                r * uniform(rng, 0.88, 1.12),
            ],
            theta: uniform(rng, 0.0, std::f64::consts::PI),
            lobulation: uniform(rng, 0.0, 0.08),
            phase: uniform(rng, 0.0, std::f64::consts::TAU),
            hu: uniform(rng, 20.0, 80.0) as f32,
        }
    }
}
