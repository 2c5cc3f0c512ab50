//! The forward pass as training, validation, `eval`, `predict` and
//! `bench-step` all run it, so they cannot drift apart.

use tch::{Device, Kind, Reduction, Tensor};

use super::compute::ComputeConfig;
use super::fused;
use super::{LunaModel, UNet};

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

/// Puts float HU `x` into the layout `compute` asks for: channels-last-3d
/// for the classifier's volumes, channels-last for the U-Net's slices.
fn prepare_input(x: Tensor, compute: ComputeConfig) -> Tensor {
    if !compute.channels_last() {
        return x;
    }
    // A 4-D or 5-D float tensor always converts; keep anything else as it is.
    let converted = match x.dim() {
        4 => torch_ext::contiguous_channels_last(&x),
        _ => torch_ext::contiguous_channels_last_3d(&x),
    };
    converted.unwrap_or(x)
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

/// P(class 1) per sample `[n]`, fp32, of `model` in eval mode on float HU
/// crops `x` `[n,1,32,48,48]`, as `compute` asks: what `train analyze`'s
/// nodule and malignancy classifiers give (no labels, so no loss).
/// bf16 on the CPU fuses each conv with its ReLU ([`fused`]).
pub fn classify_with(model: &LunaModel, x: Tensor, compute: ComputeConfig) -> Tensor {
    let x = prepare_input(x, compute);
    let fused = fused::fused_kind(&x, compute).and_then(|kind| model.forward_fused(&x, kind));
    let probs = fused::or_plain(fused, || {
        let _autocast = autocast(&x, compute);
        model.forward(&x, false).1
    });
    probs.select(1, 1).to_kind(Kind::Float)
}

/// The U-Net's P(nodule) per pixel `[n, classes, H, W]`, fp32, for float HU
/// slices `x` `[n, in_channels, H, W]`, as `compute` asks: the input in its
/// layout, the forward pass under its autocast. Training, validation and
/// `bench-step --model unet` all run this; out of training, bf16 on the
/// CPU fuses each conv with its LeakyReLU ([`fused`]).
pub fn segment_with(model: &UNet, x: Tensor, train: bool, compute: ComputeConfig) -> Tensor {
    let x = prepare_input(x, compute);
    let fused = match train {
        true => None,
        false => fused::fused_kind(&x, compute).map(|kind| model.forward_fused(&x, kind)),
    };
    let prediction = fused::or_plain(fused, || {
        let _autocast = autocast(&x, compute);
        model.forward_t(&x, train)
    });
    // Autocast leaves the sigmoid in bf16/fp16; the loss and the metrics
    // sum over many pixels, which wants fp32.
    prediction.to_kind(Kind::Float)
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
        // Only conv weights change: 5-D ones (the classifier) to
        // channels-last-3d, 4-D ones (the U-Net) to channels-last. A model
        // has one kind or the other. A failure leaves them contiguous,
        // which is slower but still correct.
        let _ = torch_ext::var_store_to_channels_last_3d(vs);
        let _ = torch_ext::var_store_to_channels_last(vs);
    }
}
