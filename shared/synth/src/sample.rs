//! Small vector maths and random draws shared by the synthetic anatomy.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A point or direction in the grid frame: millimetres along (c, r, i), i.e.
/// `(c * sx, r * sy, i * sz)`, before the scan's direction and origin apply.
pub type V3 = [f64; 3];

pub fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

pub fn normalize(a: V3) -> V3 {
    let n = norm(a);
    if n > 0.0 {
        scale(a, 1.0 / n)
    } else {
        [1.0, 0.0, 0.0]
    }
}

pub fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Standard normal by Box–Muller (one of the pair is enough here).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn unit_vector(rng: &mut ChaCha8Rng) -> V3 {
    normalize([normal(rng), normal(rng), normal(rng)])
}

/// Any unit vector perpendicular to `d`.
pub fn perpendicular(rng: &mut ChaCha8Rng, d: V3) -> V3 {
    let d = normalize(d);
    let v = unit_vector(rng);
    let p = sub(v, scale(d, dot(v, d)));
    if norm(p) < 1e-6 {
        normalize(sub([0.0, 0.0, 1.0], scale(d, d[2])))
    } else {
        normalize(p)
    }
}
