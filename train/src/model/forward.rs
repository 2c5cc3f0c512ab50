//! The forward pass as training, validation, `eval`, `predict` and
//! `bench-step` all run it, so they cannot drift apart.

use tch::{Device, Kind, Reduction, Tensor};

use super::compute::ComputeConfig;
use super::LunaModel;

/// Per-sample results of one batch, still on the device.
pub struct BatchOutput {
    /// Cross-entropy per sample `[n]`: the mean is what training
    /// backpropagates, the values are the metric rows' loss.
    pub loss: Tensor,
    /// P(nodule) per sample `[n]` (softmax of the logits, class 1).
    pub prob_pos: Tensor,
}

/// What the loss compares the logits with.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// Class indices `[n]`.
    Class(&'a Tensor),
    /// Class probabilities `[n, 2]` (mixup's soft labels).
    Soft(&'a Tensor),
}

impl<'a> From<&'a Tensor> for Target<'a> {
    fn from(labels: &'a Tensor) -> Self {
        Target::Class(labels)
    }
}

/// Runs `model` on float HU `x` `[n,1,32,48,48]` against `target`.
/// `train` selects BatchNorm's batch statistics and dropout, as in
/// [`LunaModel::forward`].
pub fn forward_batch<'a>(
    model: &LunaModel,
    x: &Tensor,
    target: impl Into<Target<'a>>,
    train: bool,
) -> BatchOutput {
    let (logits, probs) = model.forward(x, train);
    // Per sample (the book's `reduction='none'`), so the rows can be split by class.
    let loss = match target.into() {
        Target::Class(labels) => {
            logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::None, -100, 0.0)
        }
        Target::Soft(p) => {
            -(logits.log_softmax(1, Kind::Float) * p).sum_dim_intlist(1, false, Kind::Float)
        }
    };
    BatchOutput {
        loss,
        prob_pos: probs.select(1, 1),
    }
}

/// Puts float HU `x` into the layout `compute` asks for.
fn prepare_input(x: Tensor, compute: ComputeConfig) -> Tensor {
    if compute.channels_last() {
        // A 5-D float tensor always converts; keep the input as it is otherwise.
        torch_ext::contiguous_channels_last_3d(&x).unwrap_or(x)
    } else {
        x
    }
}

/// [`forward_batch`] as `compute` asks: float HU `x` in its memory layout,
/// under its autocast (none for fp32). The guard ends with the forward
/// pass: backward runs outside autocast, as PyTorch's recipe does, and the
/// outputs are fp32 (autocast runs softmax and the loss in fp32).
pub fn forward_batch_with<'a>(
    model: &LunaModel,
    x: Tensor,
    target: impl Into<Target<'a>>,
    train: bool,
    compute: ComputeConfig,
) -> BatchOutput {
    let x = prepare_input(x, compute);
    let _autocast = autocast(&x, compute);
    forward_batch(model, &x, target, train)
}

/// The autocast `compute` asks for on `x`'s device, for as long as the
/// guard lives (none for fp32).
pub fn autocast(x: &Tensor, compute: ComputeConfig) -> Option<torch_ext::AutocastGuard> {
    compute.autocast_kind().and_then(|kind| {
        let device = if x.device().is_cuda() {
            x.device()
        } else {
            Device::Cpu
        };
        torch_ext::AutocastGuard::new(device, kind).ok()
    })
}

/// Converts a model's weights to channels-last when `compute` asks for it,
/// before any optimizer takes hold of them.
pub fn prepare_weights(vs: &tch::nn::VarStore, compute: ComputeConfig) {
    if compute.channels_last() {
        // Only 5-D (conv) weights change; a failure leaves them contiguous,
        // which is slower but still correct.
        let _ = torch_ext::var_store_to_channels_last_3d(vs);
    }
}
