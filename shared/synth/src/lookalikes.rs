//! Things a segmentation model must learn to leave alone: pleural plaques,
//! flat soft-tissue lenses on the inside of the chest wall. On one slice a
//! plaque is a bright blob at the lung's edge like a pleura-attached
//! nodule; across the ±3 context slices and in its flat profile it is not.
//! (Vessels seen in cross-section, the other classic look-alike, are
//! already there: the vessel trees cross the slices at every angle.)
//!
//! Plaques are not annotated and get no candidate. They draw from a random
//! stream of their own, so adding them left every other draw, and so the
//! candidate and annotation lists, as they were.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::anatomy::{Anatomy, Nodule};
use super::sample::{add, norm, scale, sub, uniform, V3};

/// Look-alikes draw from stream `LOOKALIKE_STREAM | index` of the seed;
/// series draw from stream `index`.
const LOOKALIKE_STREAM: u64 = 1 << 63;
/// Clearance (mm) between a plaque and any nodule, beyond both radii, so
/// the book's mask of a nodule never grows into a plaque.
const CLEARANCE_MM: f64 = 6.0;

pub struct LookalikeParams {
    /// Plaques per lung, inclusive range.
    pub plaques_per_lung: (usize, usize),
}

/// The random stream of series `index`'s look-alikes.
pub fn lookalike_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(LOOKALIKE_STREAM | index as u64);
    rng
}

/// Pleural plaques on both lungs, clear of `nodules`: ellipsoids thin
/// along the wall's normal (1.2–2 mm half-thickness), 3–7 mm along it.
pub fn place_plaques(
    rng: &mut ChaCha8Rng,
    anatomy: &Anatomy,
    nodules: &[Nodule],
    params: &LookalikeParams,
) -> Vec<Nodule> {
    let mut plaques = Vec::new();
    for lung in &anatomy.lungs {
        let count = rng.random_range(params.plaques_per_lung.0..=params.plaques_per_lung.1);
        let span = lung.z1 - lung.z0;
        for _ in 0..count {
            let (p, n) = lung.surface_point(rng, lung.z0 + 0.2 * span, lung.z1 - 0.2 * span);
            let thick = uniform(rng, 1.2, 2.0);
            let wide = uniform(rng, 3.0, 7.0);
            let tall = uniform(rng, 3.0, 7.0);
            // Centred on the wall: half the lens shows in the lung.
            let center: V3 = add(p, scale(n, 0.5 * thick));
            let reach = wide.max(tall);
            let clear = nodules
                .iter()
                .all(|k| norm(sub(k.center, center)) > 0.5 * k.diameter_mm + reach + CLEARANCE_MM);
            if !clear {
                continue;
            }
            plaques.push(Nodule {
                center,
                diameter_mm: 2.0 * reach,
                // The painter's first axis points along (cos θ, sin θ): the normal.
                semi: [thick, wide, tall],
                theta: n[1].atan2(n[0]),
                lobulation: uniform(rng, 0.0, 0.05),
                phase: uniform(rng, 0.0, std::f64::consts::TAU),
                hu: uniform(rng, 10.0, 60.0) as f32,
            });
        }
    }
    plaques
}
