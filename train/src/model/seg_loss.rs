//! Chapter 13's loss: a soft Dice loss per sample, and the training loss
//! that weights the false negatives eight times (`computeBatchLoss`,
//! `diceLoss` in the book's p2ch13/training.py).

use tch::{Kind, Tensor};

/// The book's weight of the false-negative Dice term: missing nodule
/// pixels costs far more than marking extra ones.
pub const FALSE_NEGATIVE_WEIGHT: f64 = 8.0;

/// `1 − (2·Σ p·y + 1) / (Σ p + Σ y + 1)` per sample `[n]`, the sums over
/// every axis but the batch (ε = 1 as the book).
pub fn dice_loss(prediction: &Tensor, label: &Tensor) -> Tensor {
    let dims: Vec<i64> = (1..prediction.dim() as i64).collect();
    let label = label.to_kind(Kind::Float);
    let sum = |t: &Tensor| t.sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    let correct = sum(&(prediction * &label));
    let ratio = (correct * 2.0 + 1.0) / (sum(prediction) + sum(&label) + 1.0);
    1.0 - ratio
}

/// A batch's losses: what training backpropagates and what the metrics keep.
pub struct SegLoss {
    /// mean Dice + 8 × mean Dice of the false negatives (`p·y` against `y`).
    pub total: Tensor,
    /// The Dice loss per sample `[n]`, the metric rows' loss.
    pub dice: Tensor,
}

/// [`SegLoss`] of P(nodule) per pixel `prediction` against the 0/1 mask
/// `label`, both `[n, 1, H, W]`.
pub fn segmentation_loss(prediction: &Tensor, label: &Tensor) -> SegLoss {
    let label = label.to_kind(Kind::Float);
    let dice = dice_loss(prediction, &label);
    let false_negatives = dice_loss(&(prediction * &label), &label);
    SegLoss {
        total: dice.mean(Kind::Float) + false_negatives.mean(Kind::Float) * FALSE_NEGATIVE_WEIGHT,
        dice,
    }
}
