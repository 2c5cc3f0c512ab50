//! Where nodules go, and where the candidate detector "fires".

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::anatomy::{Anatomy, Nodule, Vessels};
use super::sample::{add, norm, perpendicular, scale, sub, uniform, unit_vector, V3};

/// A candidate in the grid frame.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub p: V3,
    pub is_nodule: bool,
}

pub struct NoduleParams {
    pub count: (usize, usize),
    pub diameter_mm: (f64, f64),
}

/// Nodules inside the lungs: free-standing, touching a vessel, or touching
/// the pleura. Small nodules are commoner, as in LUNA.
pub fn place_nodules(
    rng: &mut ChaCha8Rng,
    anatomy: &Anatomy,
    vessels: &Vessels,
    params: &NoduleParams,
) -> Vec<Nodule> {
    let count = rng.random_range(params.count.0..=params.count.1);
    // A nodule thinner than ~2 slices is barely visible; keep every positive findable.
    let (hi, spacing_z) = (params.diameter_mm.1, anatomy.grid.spacing[2]);
    let lo = params.diameter_mm.0.max(2.0 * spacing_z + 1.0).min(hi);
    let mut nodules: Vec<Nodule> = Vec::with_capacity(count);
    let mut attempts = 0;
    while nodules.len() < count && attempts < 200 * count.max(1) {
        attempts += 1;
        let d = lo + (hi - lo) * rng.random::<f64>().powi(2);
        let Some(center) = nodule_center(rng, anatomy, vessels, d) else {
            continue;
        };
        let clear = nodules
            .iter()
            .all(|n| norm(sub(n.center, center)) > 0.5 * (n.diameter_mm + d) + 5.0);
        if clear {
            nodules.push(Nodule::random(rng, center, d));
        }
    }
    nodules
}

fn nodule_center(rng: &mut ChaCha8Rng, anatomy: &Anatomy, vessels: &Vessels, d: f64) -> Option<V3> {
    let lung = &anatomy.lungs[rng.random_range(0..2)];
    let kind = rng.random::<f64>();
    let center = if kind < 0.55 {
        let c = lung.random_point(rng, 0.9);
        // The whole nodule must sit in the lung.
        let r = 0.5 * d + 1.0;
        let probes = [
            [r, 0.0, 0.0],
            [-r, 0.0, 0.0],
            [0.0, r, 0.0],
            [0.0, -r, 0.0],
            [0.0, 0.0, r],
            [0.0, 0.0, -r],
        ];
        probes
            .iter()
            .all(|o| lung.contains(add(c, *o)))
            .then_some(c)?
    } else if kind < 0.8 {
        let in_lung: Vec<_> = vessels
            .segments
            .iter()
            .filter(|s| lung.contains(s.a))
            .collect();
        if in_lung.is_empty() {
            return None;
        }
        let s = in_lung[rng.random_range(0..in_lung.len())];
        let n = perpendicular(rng, sub(s.b, s.a));
        add(s.a, scale(n, s.ra + 0.35 * d))
    } else {
        let span = lung.z1 - lung.z0;
        let (p, n) = lung.surface_point(rng, lung.z0 + 0.2 * span, lung.z1 - 0.2 * span);
        sub(p, scale(n, 0.4 * d))
    };
    (lung.q(center) < 0.95 && inside_grid(anatomy, center)).then_some(center)
}

/// A voxel index that rounds into the volume on every axis.
fn inside_grid(anatomy: &Anatomy, p: V3) -> bool {
    let irc = anatomy.grid.irc(p);
    (0..3).all(|k| irc[k] >= 0.0 && irc[k] <= (anatomy.grid.shape[k] - 1) as f64)
}

pub struct CandidateParams {
    pub total: (usize, usize),
    /// Chance that a nodule gets a second class-1 candidate.
    pub second_hit: f64,
    /// Chance that an annotated nodule gets no class-1 candidate at all.
    pub missed: f64,
}

/// Kinds of negatives, with their weights; vessels dominate as in LUNA.
const NEGATIVE_KINDS: [(NegativeKind, f64); 7] = [
    (NegativeKind::Vessel, 0.33),
    (NegativeKind::Junction, 0.17),
    (NegativeKind::Lung, 0.18),
    (NegativeKind::Body, 0.14),
    (NegativeKind::Pleura, 0.08),
    (NegativeKind::VolumeEdge, 0.06),
    (NegativeKind::Air, 0.04),
];

#[derive(Debug, Clone, Copy)]
enum NegativeKind {
    Vessel,
    Junction,
    Lung,
    Body,
    Pleura,
    VolumeEdge,
    Air,
}

pub fn place_candidates(
    rng: &mut ChaCha8Rng,
    anatomy: &Anatomy,
    vessels: &Vessels,
    nodules: &[Nodule],
    params: &CandidateParams,
) -> Vec<Candidate> {
    let total = rng.random_range(params.total.0..=params.total.1);
    let mut out = Vec::with_capacity(total);
    for n in nodules {
        if rng.random::<f64>() < params.missed {
            continue;
        }
        let hits = 1 + usize::from(rng.random::<f64>() < params.second_hit);
        for _ in 0..hits {
            // Well inside the book's d/4 match window, so the merge finds it.
            let j = 0.1 * n.diameter_mm;
            let p = add(
                n.center,
                [
                    uniform(rng, -j, j),
                    uniform(rng, -j, j),
                    uniform(rng, -j, j),
                ],
            );
            if inside_grid(anatomy, p) {
                out.push(Candidate { p, is_nodule: true });
            }
        }
    }
    let wanted = total.max(out.len() + 1);
    let mut attempts = 0;
    while out.len() < wanted && attempts < 100 * total {
        attempts += 1;
        let Some(p) = negative_point(rng, anatomy, vessels) else {
            continue;
        };
        let clear_of_nodules = nodules
            .iter()
            .all(|n| norm(sub(n.center, p)) > 0.5 * n.diameter_mm * 1.2 + 2.0);
        if clear_of_nodules && inside_grid(anatomy, p) {
            out.push(Candidate {
                p,
                is_nodule: false,
            });
        }
    }
    out
}

fn negative_point(rng: &mut ChaCha8Rng, anatomy: &Anatomy, vessels: &Vessels) -> Option<V3> {
    let mut pick = rng.random::<f64>();
    let kind = NEGATIVE_KINDS
        .iter()
        .find(|(_, w)| {
            pick -= w;
            pick < 0.0
        })
        .map_or(NegativeKind::Lung, |(k, _)| *k);
    let extent = anatomy.grid.extent();
    let anywhere = |rng: &mut ChaCha8Rng| {
        [
            uniform(rng, 0.0, extent[0]),
            uniform(rng, 0.0, extent[1]),
            uniform(rng, 0.0, extent[2]),
        ]
    };
    let lung = &anatomy.lungs[rng.random_range(0..2)];
    match kind {
        NegativeKind::Vessel => {
            if vessels.segments.is_empty() {
                return None;
            }
            let s = vessels.segments[rng.random_range(0..vessels.segments.len())];
            let on_axis = add(s.a, scale(sub(s.b, s.a), rng.random::<f64>()));
            let off = scale(
                perpendicular(rng, sub(s.b, s.a)),
                uniform(rng, 0.0, 0.8 * s.ra),
            );
            Some(add(on_axis, off))
        }
        NegativeKind::Junction => {
            if vessels.junctions.is_empty() {
                return None;
            }
            let j = vessels.junctions[rng.random_range(0..vessels.junctions.len())];
            Some(add(j, scale(unit_vector(rng), uniform(rng, 0.0, 1.0))))
        }
        NegativeKind::Lung => Some(lung.random_point(rng, 0.98)),
        NegativeKind::Body => {
            let p = anywhere(rng);
            (anatomy.in_body(p) && anatomy.lung_at(p).is_none()).then_some(p)
        }
        NegativeKind::Pleura => {
            let (p, n) = lung.surface_point(rng, lung.z0, lung.z1);
            Some(add(p, scale(n, uniform(rng, -2.0, 2.0))))
        }
        NegativeKind::VolumeEdge => {
            let mut p = anywhere(rng);
            let axis = rng.random_range(0..3);
            let spacing = anatomy.grid.spacing[axis];
            let voxels_in = rng.random_range(0..=3) as f64 * spacing;
            p[axis] = if rng.random::<bool>() {
                voxels_in
            } else {
                extent[axis] - spacing - voxels_in
            };
            Some(p)
        }
        NegativeKind::Air => {
            let p = anywhere(rng);
            (!anatomy.in_body(p)).then_some(p)
        }
    }
}
