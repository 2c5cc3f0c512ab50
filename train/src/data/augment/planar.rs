//! Chapter 13's augmentation of slices and their masks (the book's
//! `SegmentationAugmentation`), batched on the device: the classifier's
//! draws and magnitudes (flip, offset, scale per in-plane axis, one
//! rotation), one affine per sample, applied to the slices and the mask
//! alike with `grid_sample` (bilinear, border, `align_corners=False`); the
//! mask is thresholded at 0.5 again and only the slices get the noise.
//!
//! Two departures from the book, both deliberate: each sample draws its
//! own affine (the book expands one transform over the whole batch), and
//! the offset moves the slice (the book writes it into row 2 of a 3×3
//! whose rows 0–1 alone reach `affine_grid`, so its offset never acts).

use tch::{Kind, Tensor};

use super::{AugmentConfig, BILINEAR, BORDER};

/// The mask's threshold after interpolation, as the book's `> 0.5`.
const MASK_THRESHOLD: f64 = 0.5;

impl AugmentConfig {
    /// Augments slices `input` `[B,C,H,W]` (float HU) and masks `label`
    /// `[B,1,H,W]` (0/1 of any kind) on their device; returns float slices
    /// and a boolean mask.
    pub fn apply_planar(&self, input: &Tensor, label: &Tensor) -> (Tensor, Tensor) {
        let mut x = input.shallow_clone();
        let mut y = label.to_kind(Kind::Bool);
        if self.warps() {
            let theta = self.planar_affines(input);
            let grid = Tensor::affine_grid_generator(&theta, input.size(), false);
            x = input.grid_sampler(&grid, BILINEAR, BORDER, false);
            y = label
                .to_kind(input.kind())
                .grid_sampler(&grid, BILINEAR, BORDER, false)
                .gt(MASK_THRESHOLD);
        }
        (self.add_noise(x, input), y)
    }

    /// `[B,2,3]` affines on `input`'s device: the in-plane rows and columns
    /// (x, y, offset) of the classifier's transforms, whose rotation turns
    /// within the plane; the draws for the third axis go unused.
    fn planar_affines(&self, input: &Tensor) -> Tensor {
        let batch = input.size()[0];
        let full = self.random_affines(batch as usize);
        let columns = Tensor::from_slice(&[0i64, 1, 3]);
        full.narrow(1, 0, 2).index_select(2, &columns).to_device_(
            input.device(),
            input.kind(),
            true,
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::generator;
    use super::*;
    use tch::Device;

    fn slices(b: i64, c: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(b * c * h * w, (Kind::Float, Device::Cpu)).view([b, c, h, w]) * 3.0 - 500.0
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[])
    }

    #[test]
    fn a_flip_mirrors_slices_and_mask_alike() {
        let _generator = generator();
        let cfg = AugmentConfig {
            flip: true,
            flip_probability: 1.0,
            ..Default::default()
        };
        let x = slices(2, 7, 6, 8);
        let mask = x.narrow(1, 3, 1).gt(-300.0);
        tch::manual_seed(1);
        let (ax, am) = cfg.apply_planar(&x, &mask);
        // Both in-plane axes flip with probability 1.
        assert!(max_abs_diff(&ax, &x.flip([2, 3])) < 1e-3);
        assert_eq!(max_abs_diff(&am, &mask.flip([2, 3])), 0.0);
        assert_eq!(am.kind(), Kind::Bool);
    }

    #[test]
    fn an_offset_moves_the_slice_and_a_rotation_keeps_the_mask_binary() {
        let _generator = generator();
        let x = slices(1, 1, 8, 8);
        let mask = x.gt(-400.0);
        // The largest offset draw shifts by `offset` grid units: 0.25 is one
        // pixel of an 8-wide slice, so column j reads column j + 1.
        let theta = Tensor::from_slice(&[1.0f32, 0.0, 0.25, 0.0, 1.0, 0.0]).view([1, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, x.size(), false);
        let moved = x.grid_sampler(&grid, BILINEAR, BORDER, false);
        let expected = x.narrow(3, 1, 7);
        assert!(max_abs_diff(&moved.narrow(3, 0, 7), &expected) < 1e-3);
        let cfg = AugmentConfig {
            rotate: true,
            offset: 0.03,
            scale: 0.2,
            ..Default::default()
        };
        tch::manual_seed(2);
        // The drawn offsets reach the affine's translation column.
        let theta = cfg.planar_affines(&slices(64, 1, 8, 8));
        assert_eq!(theta.size(), [64, 2, 3]);
        let shift = theta.narrow(2, 2, 1).abs();
        assert!(shift.max().double_value(&[]) > 0.02, "offsets act");
        assert!(shift.max().double_value(&[]) <= 0.03 + 1e-6);
        let (_, am) = cfg.apply_planar(&x, &mask);
        assert_eq!(am.kind(), Kind::Bool);
        assert!(am.any().int64_value(&[]) == 1);
    }

    #[test]
    fn each_sample_draws_its_own_affine_and_only_slices_get_noise() {
        let _generator = generator();
        let one = slices(1, 2, 16, 16);
        let x = one.repeat([4, 1, 1, 1]);
        let mask = x.narrow(1, 0, 1).gt(0.0);
        let cfg = AugmentConfig {
            rotate: true,
            ..Default::default()
        };
        tch::manual_seed(3);
        let (ax, am) = cfg.apply_planar(&x, &mask);
        assert!(
            max_abs_diff(&ax.get(0), &ax.get(1)) > 1.0,
            "one affine per sample"
        );
        assert!(max_abs_diff(&am.get(0), &am.get(1)) > 0.0);
        let noisy = AugmentConfig {
            noise: 25.0,
            ..Default::default()
        };
        let (nx, nm) = noisy.apply_planar(&x, &mask);
        let sd = (&nx - &x).std(true).double_value(&[]);
        assert!((sd / 25.0 - 1.0).abs() < 0.05, "noise sd {sd}");
        assert_eq!(max_abs_diff(&nm, &mask), 0.0, "the mask gets no noise");
    }
}
