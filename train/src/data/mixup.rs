//! Mixup (Zhang et al. 2018; chapter 12, exercise 4), batched on the device:
//! each sample is blended with a partner from the same batch,
//! `x = λ·x + (1 − λ)·x[partner]`, and so are its one-hot labels, with
//! `λ ~ Beta(α, α)` per sample. With `positives_only` a positive's partner
//! is another positive and a negative is left alone, so new positives are
//! synthesised and no label becomes soft.

use tch::{Device, Kind, Tensor};

use crate::model::NUM_CLASSES;

/// A mixed batch: the images, and the soft targets `[n, 2]` (probabilities
/// of each class) the loss is taken against.
pub struct Mixed {
    pub images: Tensor,
    pub targets: Tensor,
}

/// Mixes `images` `[n,1,D,H,W]` (float) with class `labels` `[n]` on their
/// device. The draws come from libtorch's CPU generator, so a seeded batch
/// mixes alike on every device.
pub fn mixup(images: &Tensor, labels: &Tensor, alpha: f64, positives_only: bool) -> Mixed {
    let device = images.device();
    let n = images.size()[0];
    // Beta(α, α) as G₁ / (G₁ + G₂) with Gᵢ ~ Gamma(α, 1).
    let concentration = Tensor::full([2, n], alpha, (Kind::Double, Device::Cpu));
    let gamma = concentration.internal_standard_gamma();
    let lambda = (gamma.get(0) / gamma.sum_dim_intlist(0, false, Kind::Double))
        .to_kind(Kind::Float)
        .to_device_(device, Kind::Float, true, false);
    let keys = Tensor::rand([2, n], (Kind::Float, Device::Cpu)).to_device_(
        device,
        Kind::Float,
        true,
        false,
    );
    let eligible = if positives_only {
        labels.gt(0)
    } else {
        labels.ones_like().to_kind(Kind::Bool)
    };
    let partner = partners(&eligible, &keys);
    // λ = 1 exactly where nothing mixes: x·1 + x·0 is x to the bit.
    let lambda = lambda.where_self(&eligible, &lambda.ones_like());
    let one_hot = labels
        .to_kind(Kind::Int64)
        .one_hot(NUM_CLASSES)
        .to_kind(Kind::Float);
    let mix = |t: &Tensor, shape: &[i64]| {
        let l = lambda.view(shape);
        t * &l + t.index_select(0, &partner) * (1.0 - &l)
    };
    let mut image_shape = vec![1i64; images.dim()];
    image_shape[0] = n;
    Mixed {
        images: mix(images, &image_shape),
        targets: mix(&one_hot, &[n, 1]),
    }
}

/// Each sample's partner index, from two rows of uniform `keys` `[2, n]`:
/// the eligible samples (all, or the positives) sorted by one row are
/// paired with the same samples sorted by the other, which is a uniform
/// random matching among them; the ineligible ones sort after, by index,
/// identically in both rows, and so are paired with themselves. All on the
/// device: no host read per batch.
fn partners(eligible: &Tensor, keys: &Tensor) -> Tensor {
    let n = eligible.size()[0];
    let index = Tensor::arange(n, (Kind::Float, eligible.device()));
    let order = |row: i64| {
        keys.get(row)
            .where_self(eligible, &(&index + 2.0))
            .argsort(0, false)
    };
    let (from, to) = (order(0), order(1));
    Tensor::zeros([n], (Kind::Int64, eligible.device())).scatter(0, &from, &to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// libtorch's generator is process-wide and tests run on threads.
    static GENERATOR: Mutex<()> = Mutex::new(());

    fn batch(labels: &[i64]) -> (Tensor, Tensor) {
        let n = labels.len() as i64;
        // Sample i is filled with the value i, so a mix shows its partner.
        let images = Tensor::arange(n, (Kind::Float, Device::Cpu))
            .view([n, 1, 1, 1, 1])
            .repeat([1, 1, 2, 3, 3]);
        (images, Tensor::from_slice(labels))
    }

    #[test]
    fn positives_mix_only_with_positives_and_negatives_stay() {
        let labels = [1, 0, 1, 0, 0, 1, 1, 0];
        let (images, labels_t) = batch(&labels);
        let _generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        for seed in 0..20 {
            tch::manual_seed(seed);
            let m = mixup(&images, &labels_t, 0.4, true);
            let values =
                Vec::<f32>::try_from(m.images.mean_dim(&[1, 2, 3, 4][..], false, Kind::Float))
                    .unwrap();
            let targets = Vec::<f32>::try_from(m.targets.select(1, 1)).unwrap();
            for (i, &l) in labels.iter().enumerate() {
                if l == 0 {
                    assert_eq!(values[i], i as f32, "negative {i} changed (seed {seed})");
                    assert_eq!(targets[i], 0.0);
                } else {
                    assert_eq!(targets[i], 1.0, "a positive stays a positive");
                    // A convex mix of i and one positive index j.
                    let ok = labels.iter().enumerate().any(|(j, &lj)| {
                        lj == 1 && {
                            let (lo, hi) = (i.min(j) as f32, i.max(j) as f32);
                            values[i] >= lo - 1e-4 && values[i] <= hi + 1e-4
                        }
                    });
                    assert!(
                        ok,
                        "positive {i} mixed outside the positives: {}",
                        values[i]
                    );
                }
            }
        }
    }

    #[test]
    fn mixing_everything_blends_images_and_labels_alike() {
        let labels = [1, 0, 0, 1, 0, 0];
        let (images, labels_t) = batch(&labels);
        let _generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(3);
        let a = mixup(&images, &labels_t, 1.0, false);
        tch::manual_seed(3);
        let b = mixup(&images, &labels_t, 1.0, false);
        assert!(
            a.images.equal(&b.images) && a.targets.equal(&b.targets),
            "seeded mixup repeats"
        );
        let sums = Vec::<f32>::try_from(a.targets.sum_dim_intlist(1, false, Kind::Float)).unwrap();
        assert!(sums.iter().all(|&s| (s - 1.0).abs() < 1e-6), "{sums:?}");
        let soft = Vec::<f32>::try_from(a.targets.select(1, 1)).unwrap();
        assert!(
            soft.iter().any(|&p| p > 0.01 && p < 0.99),
            "with α = 1 some label is mixed: {soft:?}"
        );
        // Partners form a permutation: the batch mean of the images is
        // not kept in general, but every partner index is in range.
        let keys = Tensor::rand([2, 6], (Kind::Float, Device::Cpu));
        let all = labels_t.ones_like().to_kind(Kind::Bool);
        let mut p = Vec::<i64>::try_from(partners(&all, &keys)).unwrap();
        p.sort();
        assert_eq!(p, vec![0, 1, 2, 3, 4, 5]);
    }
}
