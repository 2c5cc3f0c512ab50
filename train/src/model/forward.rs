//! The forward pass as training, validation, `eval`, `predict` and
//! `bench-step` all run it, so they cannot drift apart.

use tch::{Reduction, Tensor};

use super::LunaModel;

/// Per-sample results of one batch, still on the device.
pub struct BatchOutput {
    /// Cross-entropy per sample `[n]`: the mean is what training
    /// backpropagates, the values are the metric rows' loss.
    pub loss: Tensor,
    /// P(nodule) per sample `[n]` (softmax of the logits, class 1).
    pub prob_pos: Tensor,
}

/// Runs `model` on float HU `x` `[n,1,32,48,48]` with class `labels` `[n]`.
/// `train` selects BatchNorm's batch statistics and dropout, as in
/// [`LunaModel::forward`].
pub fn forward_batch(model: &LunaModel, x: &Tensor, labels: &Tensor, train: bool) -> BatchOutput {
    let (logits, probs) = model.forward(x, train);
    // Per sample (the book's `reduction='none'`), so the rows can be split by class.
    let loss = logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::None, -100, 0.0);
    BatchOutput {
        loss,
        prob_pos: probs.select(1, 1),
    }
}
