//! Inference with each convolution and the activation after it as one
//! oneDNN primitive ([`torch_ext::conv_pointwise`]), for bf16 on the CPU.
//!
//! Between the convolutions of LunaModel and the U-Net, PyTorch's eager
//! path (and ours under autocast) writes each conv's output, reads it back
//! for the ReLU/LeakyReLU and writes it again: memory-bound passes over
//! activation-sized tensors that took ~40% of the classifier's inference
//! on a 2-core Xeon. Fused, the activation runs on each output tile while
//! it is in registers. The arithmetic is autocast's (the same bf16
//! weights, the same oneDNN convolution, fp32 where autocast keeps fp32);
//! only where an activation meets bf16 rounding can a value move by one
//! bf16 step (LeakyReLU's slope applied before the rounding rather than
//! after it).
//!
//! fp32 keeps the plain path: it is the one checked against the book's
//! pipeline to the bit. CUDA keeps it too: the op is oneDNN's, CPU only.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::{nn, Device, Kind, Tensor};
use torch_ext::{ConvGeometry, PostOp};

use super::compute::ComputeConfig;

/// Set when the fused op failed once (a CPU whose oneDNN has no bf16
/// kernels, say): later batches go straight to the plain path.
static UNUSABLE: AtomicBool = AtomicBool::new(false);

/// The dtype the fused path runs in for input `x` under `compute`: bf16 on
/// the CPU where this libtorch has the op; `None` means the plain path.
pub fn fused_kind(x: &Tensor, compute: ComputeConfig) -> Option<Kind> {
    fused_kind_on(x.device(), compute)
}

/// [`fused_kind`] for inputs on `device`.
pub fn fused_kind_on(device: Device, compute: ComputeConfig) -> Option<Kind> {
    let usable = device == Device::Cpu
        && compute.autocast_kind() == Some(Kind::BFloat16)
        && !UNUSABLE.load(Ordering::Relaxed)
        && torch_ext::conv_pointwise_available();
    usable.then_some(Kind::BFloat16)
}

/// The fused path's result, or the plain path's when the fused one cannot
/// run this model (`None`) or failed ([`usable`]).
pub fn or_plain(
    fused: Option<Result<Tensor, torch_ext::Error>>,
    plain: impl FnOnce() -> Tensor,
) -> Tensor {
    fused.and_then(usable).unwrap_or_else(plain)
}

/// The fused path's result; a failure is said once on stderr and
/// remembered, so later calls of [`fused_kind`] answer `None`.
pub fn usable(fused: Result<Tensor, torch_ext::Error>) -> Option<Tensor> {
    match fused {
        Ok(out) => Some(out),
        Err(e) => {
            if !UNUSABLE.swap(true, Ordering::Relaxed) {
                eprintln!("note: fused bf16 convolutions failed here ({e}); using the plain path");
            }
            None
        }
    }
}

/// `post(conv(x))` with the layer's weight and bias cast to `kind` (their
/// layout kept: channels-last weights stay channels-last), detached, so
/// the op never meets autograd. tch keeps a layer's padding private, so
/// the caller states it in `geometry`.
pub fn conv<ND>(
    x: &Tensor,
    layer: &nn::Conv<ND>,
    geometry: &ConvGeometry,
    post: PostOp,
    kind: Kind,
) -> Result<Tensor, torch_ext::Error> {
    let weight = cast(&layer.ws, kind);
    let bias = layer.bs.as_ref().map(|b| cast(b, kind));
    torch_ext::conv_pointwise(x, &weight, bias.as_ref(), geometry, post)
}

/// `t` detached and cast to `kind`, for the ops between the convolutions
/// that autocast would have cast (transposed conv, linear).
pub fn cast(t: &Tensor, kind: Kind) -> Tensor {
    t.detach().to_kind(kind)
}
