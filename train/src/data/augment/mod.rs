//! Chapter 12's augmentation, batched on the device.
//!
//! One 3×4 affine per sample is drawn on the CPU from libtorch's generator;
//! then a single `affine_grid` + `grid_sample` (bilinear, border padding,
//! `align_corners=False`) warps the whole batch, and Gaussian noise is added.
//! Axis `i` of the affine is `affine_grid`'s coordinate order for an
//! `(N,C,D,H,W)` input: 0 = x = W (columns), 1 = y = H (rows), 2 = z = D
//! (slices), so the rotation turns each slice in-plane.
//!
//! On the CPU, [`warp_cpu`] computes the same warp and noise fused, without
//! the grid.

use std::f64::consts::PI;

use tch::{Device, Kind, Tensor};

mod planar;
mod warp_cpu;

/// Which augmentations run and how strongly; zero/false turns one off.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    pub flip: bool,
    /// Chance that each axis is mirrored, when `flip` is on.
    pub flip_probability: f64,
    /// Maximum shift per axis, as a fraction of the half-extent (grid units).
    pub offset: f64,
    /// Maximum relative scale change per axis.
    pub scale: f64,
    pub rotate: bool,
    /// The in-slice angle is uniform in ±this many degrees, when `rotate`
    /// is on (180: any angle, the book's draw).
    pub rotate_degrees: f64,
    /// Standard deviation of the added noise, in HU.
    pub noise: f64,
    /// Mixup's Beta(α, α) parameter; 0 is off.
    pub mixup_alpha: f64,
    /// Mix only positives with positives (chapter 12, exercise 4).
    pub mixup_positives: bool,
}

impl Default for AugmentConfig {
    /// Everything off, with the book's magnitudes ready for the switches.
    fn default() -> Self {
        AugmentConfig {
            flip: false,
            flip_probability: BOOK_FLIP_PROBABILITY,
            offset: 0.0,
            scale: 0.0,
            rotate: false,
            rotate_degrees: BOOK_ROTATE_DEGREES,
            noise: 0.0,
            mixup_alpha: 0.0,
            mixup_positives: false,
        }
    }
}

/// The book's magnitudes (`--augmented`).
pub const BOOK_FLIP_PROBABILITY: f64 = 0.5;
pub const BOOK_OFFSET: f64 = 0.1;
pub const BOOK_SCALE: f64 = 0.2;
pub const BOOK_ROTATE_DEGREES: f64 = 180.0;
pub const BOOK_NOISE: f64 = 25.0;

/// A magnitude that cannot run, named by its flag.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AugmentError {
    #[error("augment.{key} (--{flag}) = {value}: {why}")]
    Magnitude {
        key: &'static str,
        flag: &'static str,
        value: f64,
        why: &'static str,
    },
    #[error("augment.mixup_positives (--mixup-positives) needs mixup: pass --mixup ALPHA too")]
    MixupPositivesWithoutMixup,
}

/// grid_sampler's enums: bilinear interpolation, border padding.
const BILINEAR: i64 = 0;
const BORDER: i64 = 1;

/// Uniform draws per sample: 3 axes × (flip, offset, scale) + 1 angle.
const DRAWS_PER_SAMPLE: i64 = 10;

/// "flip, offset ±0.1, scale ±0.2, rotate, noise σ=25 HU", or "off": for the run log.
impl std::fmt::Display for AugmentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.flip {
            parts.push(if self.flip_probability == BOOK_FLIP_PROBABILITY {
                "flip".to_owned()
            } else {
                format!("flip p={}", self.flip_probability)
            });
        }
        if self.offset > 0.0 {
            parts.push(format!("offset ±{}", self.offset));
        }
        if self.scale > 0.0 {
            parts.push(format!("scale ±{}", self.scale));
        }
        if self.rotate {
            parts.push(if self.rotate_degrees >= BOOK_ROTATE_DEGREES {
                "rotate".to_owned()
            } else {
                format!("rotate ±{}°", self.rotate_degrees)
            });
        }
        if self.noise > 0.0 {
            parts.push(format!("noise σ={} HU", self.noise));
        }
        if self.mixup_alpha > 0.0 {
            parts.push(format!(
                "mixup α={}{}",
                self.mixup_alpha,
                if self.mixup_positives {
                    " (positives)"
                } else {
                    ""
                }
            ));
        }
        if parts.is_empty() {
            f.write_str("off")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl AugmentConfig {
    pub fn book() -> Self {
        AugmentConfig {
            flip: true,
            offset: BOOK_OFFSET,
            scale: BOOK_SCALE,
            rotate: true,
            noise: BOOK_NOISE,
            ..AugmentConfig::default()
        }
    }

    /// Rejects magnitudes that cannot run, naming the flag.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let bad = |key, flag, value, why| AugmentError::Magnitude {
            key,
            flag,
            value,
            why,
        };
        for (key, flag, v) in [
            ("offset", "augment-offset", self.offset),
            ("scale", "augment-scale", self.scale),
            ("noise", "augment-noise", self.noise),
            ("mixup_alpha", "mixup", self.mixup_alpha),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(bad(key, flag, v, "must be a finite value >= 0"));
            }
        }
        if self.scale >= 1.0 {
            return Err(bad(
                "scale",
                "augment-scale",
                self.scale,
                "must be below 1 (a scale of 1 - s must stay positive)",
            ));
        }
        if !(0.0..=1.0).contains(&self.flip_probability) {
            return Err(bad(
                "flip_probability",
                "augment-flip",
                self.flip_probability,
                "is a probability: must be in [0, 1]",
            ));
        }
        if !(0.0..=180.0).contains(&self.rotate_degrees) {
            return Err(bad(
                "rotate_degrees",
                "augment-rotate",
                self.rotate_degrees,
                "must be in [0, 180] degrees",
            ));
        }
        if self.mixup_positives && self.mixup_alpha == 0.0 {
            return Err(AugmentError::MixupPositivesWithoutMixup);
        }
        Ok(())
    }

    /// Turns on, with the book's magnitude, each augmentation whose flag is
    /// set: `[flip, offset, scale, rotate, noise]`, or all five when `all`
    /// (the book's `--augmented`). Unset flags leave a setting as it is.
    pub fn enable_book(&mut self, all: bool, [flip, offset, scale, rotate, noise]: [bool; 5]) {
        self.flip |= all || flip;
        self.rotate |= all || rotate;
        if all || offset {
            self.offset = BOOK_OFFSET;
        }
        if all || scale {
            self.scale = BOOK_SCALE;
        }
        if all || noise {
            self.noise = BOOK_NOISE;
        }
    }

    /// No warp and no noise (mixup is separate: it needs the labels).
    pub fn is_off(&self) -> bool {
        !self.flip && self.offset == 0.0 && self.scale == 0.0 && !self.rotate && self.noise == 0.0
    }

    fn warps(&self) -> bool {
        self.flip || self.offset != 0.0 || self.scale != 0.0 || self.rotate
    }

    /// One 4×4 transform from ten uniform [0,1) draws, exactly the book's
    /// sequence: per axis flip, offset, scale; then `T = T @ R`.
    pub fn transform(&self, u: &[f64]) -> [[f64; 4]; 4] {
        let mut t = [[0.0; 4]; 4];
        for (i, row) in t.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        for i in 0..3 {
            let (flip, offset, scale) = (u[3 * i], u[3 * i + 1], u[3 * i + 2]);
            // The book flips when its draw is > 0.5; this keeps those bits at p = 0.5.
            if self.flip && flip > 1.0 - self.flip_probability {
                t[i][i] *= -1.0;
            }
            if self.offset != 0.0 {
                t[i][3] = self.offset * (offset * 2.0 - 1.0);
            }
            if self.scale != 0.0 {
                t[i][i] *= 1.0 + self.scale * (scale * 2.0 - 1.0);
            }
        }
        if self.rotate {
            // At 180° the book's draw, 2πu; below, uniform in ±degrees.
            let angle = if self.rotate_degrees >= BOOK_ROTATE_DEGREES {
                u[9] * 2.0 * PI
            } else {
                (u[9] * 2.0 - 1.0) * self.rotate_degrees.to_radians()
            };
            let (s, c) = angle.sin_cos();
            let rotation = [
                [c, -s, 0.0, 0.0],
                [s, c, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ];
            t = matmul4(&t, &rotation);
        }
        t
    }

    /// `[B,3,4]` float affines for a batch, drawn from libtorch's generator.
    pub fn random_affines(&self, batch: usize) -> Tensor {
        let draws = Tensor::rand(
            [batch as i64, DRAWS_PER_SAMPLE],
            (Kind::Double, Device::Cpu),
        );
        let draws = Vec::<f64>::try_from(draws.flatten(0, -1)).unwrap_or_default();
        let mut theta = Vec::with_capacity(batch * 12);
        for u in draws.chunks_exact(DRAWS_PER_SAMPLE as usize) {
            let t = self.transform(u);
            for row in &t[..3] {
                theta.extend(row.iter().map(|&v| v as f32));
            }
        }
        Tensor::from_slice(&theta).view([batch as i64, 3, 4])
    }

    /// Augments a `[B,1,D,H,W]` batch of HU (int16 as the loader delivers
    /// it, or float) on its device, into float.
    pub fn apply(&self, input: &Tensor) -> Tensor {
        if !warp_cpu::supports(input) {
            return self.apply_with_grid(&input.to_kind(Kind::Float));
        }
        // On the CPU the warp reads the batch as stored.
        if !self.warps() {
            return match warp_cpu::Noise::draw(self.noise) {
                Some(noise) => warp_cpu::with_noise(input, noise),
                None => input.to_kind(Kind::Float),
            };
        }
        // The affines are drawn first and the noise after them on both
        // paths: one seed gives one augmentation.
        let theta = self.random_affines(input.size()[0] as usize);
        // The grid's values without the grid, and the noise fused: ~7 ms
        // instead of ~53 for a [32,1,32,48,48] batch on 2 cores.
        warp_cpu::warp_with_noise(input, &theta, warp_cpu::Noise::draw(self.noise))
    }

    /// `affine_grid` + `grid_sample`, then the noise, all on the float
    /// batch's device (CUDA).
    fn apply_with_grid(&self, input: &Tensor) -> Tensor {
        if !self.warps() {
            return self.add_noise(input.shallow_clone(), input);
        }
        let theta = self.random_affines(input.size()[0] as usize);
        // Non-blocking, like the loader's labels: no stream-wide wait per batch.
        let theta = theta.to_device_(input.device(), Kind::Float, true, false);
        self.add_noise(warp(input, &theta), input)
    }

    /// `out` plus Gaussian noise of std `noise` shaped like `input`, drawn
    /// on `input`'s device (CUDA's generator fills in parallel already).
    fn add_noise(&self, out: Tensor, input: &Tensor) -> Tensor {
        if self.noise == 0.0 {
            return out;
        }
        // Not `+=`: without a warp `out` shares storage with the caller's tensor.
        out + input.randn_like() * self.noise
    }
}

/// `grid_sample(input, affine_grid(theta, input.size))` with the book's modes.
pub fn warp(input: &Tensor, theta: &Tensor) -> Tensor {
    let grid = Tensor::affine_grid_generator(&theta.to_kind(input.kind()), input.size(), false);
    input.grid_sampler(&grid, BILINEAR, BORDER, false)
}

fn matmul4(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut out = [[0.0; 4]; 4];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..4).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    /// libtorch's generator is process-wide and tests run on threads: the
    /// tests that draw from it hold this.
    pub(super) fn generator() -> MutexGuard<'static, ()> {
        static GENERATOR: Mutex<()> = Mutex::new(());
        GENERATOR.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn display_names_each_enabled_augmentation() {
        assert_eq!(
            AugmentConfig::book().to_string(),
            "flip, offset ±0.1, scale ±0.2, rotate, noise σ=25 HU"
        );
        let none = AugmentConfig::default();
        assert!(none.is_off());
        assert_eq!(none.to_string(), "off");
    }

    fn volume(b: i64, d: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(b * d * h * w, (Kind::Float, Device::Cpu)).view([b, 1, d, h, w]) * 0.5
            - 100.0
    }

    fn identity() -> [[f64; 4]; 4] {
        AugmentConfig::default().transform(&[0.0; 10])
    }

    fn theta_from(t: [[f64; 4]; 4], b: i64) -> Tensor {
        let rows: Vec<f32> = t[..3].iter().flatten().map(|&v| v as f32).collect();
        Tensor::from_slice(&rows).view([1, 3, 4]).repeat([b, 1, 1])
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn zero_magnitudes_leave_the_batch_unchanged() {
        let x = volume(2, 4, 6, 8);
        tch::manual_seed(3);
        let y = AugmentConfig::default().apply(&x);
        assert!(max_abs_diff(&x, &y) < 1e-4);
        // The warp itself with an identity affine is also exact.
        let y = warp(&x, &theta_from(identity(), 2));
        assert!(max_abs_diff(&x, &y) < 1e-4, "{}", max_abs_diff(&x, &y));
    }

    #[test]
    fn flipping_one_axis_reverses_exactly_that_axis() {
        let x = volume(1, 4, 6, 8);
        // Affine axis 0 is x = W (dim 4), 1 is y = H (dim 3), 2 is z = D (dim 2).
        for (axis, dim) in [(0usize, 4i64), (1, 3), (2, 2)] {
            let mut t = identity();
            t[axis][axis] = -1.0;
            let y = warp(&x, &theta_from(t, 1));
            let expected = x.flip([dim]);
            assert!(max_abs_diff(&y, &expected) < 1e-4, "axis {axis}");
        }
    }

    #[test]
    fn flip_draw_above_half_flips_the_book_way() {
        let cfg = AugmentConfig {
            flip: true,
            ..Default::default()
        };
        let mut u = [0.0; 10];
        u[3] = 0.7; // axis 1 (rows) flips
        let t = cfg.transform(&u);
        assert_eq!((t[0][0], t[1][1], t[2][2]), (1.0, -1.0, 1.0));
    }

    #[test]
    fn offsets_clamp_to_the_border_voxel() {
        // W = 4, align_corners=False: grid x = -0.75, -0.25, 0.25, 0.75.
        // A shift of +0.5 (one voxel) samples columns 1, 2, 3, then 3.5 → border = col 3.
        let x = Tensor::from_slice(&[10.0f32, 20.0, 30.0, 40.0]).view([1, 1, 1, 1, 4]);
        let mut t = identity();
        t[0][3] = 0.5;
        let y = warp(&x, &theta_from(t, 1));
        let got = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
        assert_eq!(got, vec![20.0, 30.0, 40.0, 40.0]);
        // And a shift off the left edge repeats column 0 (border, not zeros).
        t[0][3] = -0.75;
        let y = warp(&x, &theta_from(t, 1));
        let got = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
        assert_eq!(got, vec![10.0, 10.0, 15.0, 25.0]);
    }

    #[test]
    fn flip_probability_sets_the_share_of_flipped_axes() {
        for p in [0.0, 0.2, 0.5, 1.0] {
            let cfg = AugmentConfig {
                flip: true,
                flip_probability: p,
                ..Default::default()
            };
            // Draws evenly spread over [0, 1): the flipped share is p.
            let flipped = (0..1000)
                .filter(|&k| {
                    let mut u = [0.0; 10];
                    u[0] = (k as f64 + 0.5) / 1000.0;
                    cfg.transform(&u)[0][0] < 0.0
                })
                .count();
            assert_eq!(flipped, (p * 1000.0) as usize, "p = {p}");
        }
    }

    #[test]
    fn a_rotation_limit_bounds_the_angle_and_180_is_the_books_draw() {
        let limited = AugmentConfig {
            rotate: true,
            rotate_degrees: 30.0,
            ..Default::default()
        };
        let book = AugmentConfig {
            rotate: true,
            ..Default::default()
        };
        for k in 0..=100 {
            let mut u = [0.0; 10];
            u[9] = k as f64 / 100.0;
            let t = limited.transform(&u);
            let angle = t[1][0].atan2(t[0][0]).to_degrees();
            assert!(angle.abs() <= 30.0 + 1e-9, "{angle}");
            let expected = (u[9] * 2.0 * PI).sin_cos();
            let t = book.transform(&u);
            assert_eq!((t[1][0], t[0][0]), expected);
        }
        let mut u = [0.0; 10];
        u[9] = 1.0;
        let t = limited.transform(&u);
        assert!((t[1][0].atan2(t[0][0]).to_degrees() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn magnitudes_out_of_range_name_their_flag() {
        type Breaks = fn(&mut AugmentConfig);
        let cases: [(&str, Breaks); 6] = [
            ("--augment-noise", |a| a.noise = -1.0),
            ("--augment-offset", |a| a.offset = f64::INFINITY),
            ("--augment-scale", |a| a.scale = 1.0),
            ("--augment-flip", |a| a.flip_probability = 1.5),
            ("--augment-rotate", |a| a.rotate_degrees = -10.0),
            ("--mixup", |a| a.mixup_positives = true),
        ];
        for (flag, break_it) in cases {
            let mut a = AugmentConfig::book();
            a.validate().unwrap();
            break_it(&mut a);
            let err = a.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn rotation_turns_slices_in_plane() {
        let cfg = AugmentConfig {
            rotate: true,
            ..Default::default()
        };
        let mut u = [0.0; 10];
        u[9] = 0.25; // a quarter turn
        let t = cfg.transform(&u);
        assert!((t[0][1] + 1.0).abs() < 1e-12 && (t[1][0] - 1.0).abs() < 1e-12);
        assert_eq!(t[2][2], 1.0);
        // On a square slice, a quarter turn permutes voxels: nothing mixes.
        let x = volume(1, 2, 4, 4);
        let y = warp(&x, &theta_from(t, 1));
        let expected = x.rot90(1, [3, 4]);
        let alt = x.rot90(-1, [3, 4]);
        assert!(
            max_abs_diff(&y, &expected) < 1e-3 || max_abs_diff(&y, &alt) < 1e-3,
            "quarter turn is not a pure in-slice rotation"
        );
    }

    #[test]
    fn book_config_draws_differ_per_sample_and_repeat_with_the_seed() {
        let cfg = AugmentConfig::book();
        let _generator = generator();
        tch::manual_seed(11);
        let a = cfg.random_affines(4);
        tch::manual_seed(11);
        let b = cfg.random_affines(4);
        assert!(a.equal(&b));
        assert_eq!(a.size(), vec![4, 3, 4]);
        assert!(max_abs_diff(&a.get(0), &a.get(1)) > 1e-3);
        let x = volume(4, 4, 6, 8);
        tch::manual_seed(5);
        let y = cfg.apply(&x);
        assert_eq!(y.size(), x.size());
        // Noise of std 25 is visible on top of any warp.
        assert!(max_abs_diff(&x, &y) > 10.0);
    }

    #[test]
    fn matmul4_multiplies() {
        let mut a = [[0.0; 4]; 4];
        let mut b = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                a[i][j] = (i * 4 + j) as f64;
                b[i][j] = if i == j { 2.0 } else { 0.0 };
            }
        }
        assert_eq!(matmul4(&a, &b)[1][2], 12.0);
    }
}
