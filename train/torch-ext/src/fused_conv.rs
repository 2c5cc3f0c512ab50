//! A convolution and the activation after it as one oneDNN primitive on the
//! CPU (`torch.ops.mkldnn._convolution_pointwise`, what `torch.compile`'s
//! inductor emits): the activation is applied to each output tile while it
//! is in registers, instead of a second pass over an activation-sized
//! tensor. Inference only: the op has no autograd formula.

use std::ffi::CString;
use std::sync::OnceLock;

use tch::Tensor;

use crate::ffi::{self, check};
use crate::Error;

/// What the primitive applies to the convolution's output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PostOp {
    None,
    Relu,
    /// `leaky_relu` with this negative slope.
    LeakyRelu(f64),
    Sigmoid,
}

impl PostOp {
    fn attr(self) -> &'static str {
        match self {
            PostOp::None => "none",
            PostOp::Relu => "relu",
            PostOp::LeakyRelu(_) => "leaky_relu",
            PostOp::Sigmoid => "sigmoid",
        }
    }

    fn scalars(self) -> Vec<f64> {
        match self {
            PostOp::LeakyRelu(slope) => vec![slope],
            _ => Vec::new(),
        }
    }
}

/// Padding, stride and dilation per spatial axis (2 for conv2d, 3 for conv3d).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub padding: Vec<i64>,
    pub stride: Vec<i64>,
    pub dilation: Vec<i64>,
    pub groups: i64,
}

impl ConvGeometry {
    /// `dims` spatial axes, each padded by `padding`, stride and dilation 1.
    pub fn same(dims: usize, padding: i64) -> Self {
        ConvGeometry {
            padding: vec![padding; dims],
            stride: vec![1; dims],
            dilation: vec![1; dims],
            groups: 1,
        }
    }
}

/// Whether this libtorch registers the fused op (it was built with oneDNN).
pub fn conv_pointwise_available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let mut out = false;
        // SAFETY: `out` is a live local.
        check(unsafe { ffi::tex_conv_pointwise_available(&mut out) }).is_ok() && out
    })
}

/// `post(conv(x, weight, bias))` in one oneDNN primitive, in `x`'s dtype
/// and memory format (weights and bias in the same dtype).
pub fn conv_pointwise(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geometry: &ConvGeometry,
    post: PostOp,
) -> Result<Tensor, Error> {
    let dims = geometry.padding.len();
    if geometry.stride.len() != dims || geometry.dilation.len() != dims {
        return Err(Error::Torch(format!(
            "conv_pointwise: padding, stride and dilation need one entry per axis, got {geometry:?}"
        )));
    }
    let attr = CString::new(post.attr()).expect("no NUL in the attribute names");
    let scalars = post.scalars();
    let mut out = std::ptr::null_mut();
    // SAFETY: every tensor pointer is a live tch tensor borrowed for the
    // call; the slices and the CString outlive it; on success `out` is a new
    // `at::Tensor*` owned by the caller, handed to `Tensor::from_ptr` once.
    unsafe {
        check(ffi::tex_conv_pointwise(
            x.as_ptr(),
            weight.as_ptr(),
            bias.map_or(std::ptr::null(), |b| b.as_ptr()),
            geometry.padding.as_ptr(),
            geometry.stride.as_ptr(),
            geometry.dilation.as_ptr(),
            dims as i64,
            geometry.groups,
            attr.as_ptr(),
            scalars.as_ptr(),
            scalars.len() as i64,
            &mut out,
        ))?;
        Ok(Tensor::from_ptr(out))
    }
}

/// On the one-pixel frame of `y` (`[N, C, H, W]`, float or bf16, H, W ≥ 2),
/// the output of a LeakyReLU(`slope`) over a 3×3 convolution padded by
/// one, adds `corrections[region][c]` before the activation (each value is
/// taken back through the inverse activation, shifted, and sent through it
/// again); `corrections` is float `[9, C]`, region `3·row + column` with
/// classes 0 first, 1 inner, 2 last. What a per-channel shift of the
/// convolution's input, folded into its bias, gets wrong where the kernel
/// reads the zero padding instead of the shifted value is exactly such a
/// per-region constant: this puts it right without another full pass.
pub fn leaky_frame_shift_(y: &mut Tensor, corrections: &Tensor, slope: f64) -> Result<(), Error> {
    // SAFETY: `y` is borrowed mutably for the in-place write and
    // `corrections` shared; both are live tch tensors.
    check(unsafe { ffi::tex_leaky_frame_shift(y.as_mut_ptr(), corrections.as_ptr(), slope) })
}

/// `x.max_pool3d(2, 2)` of a `[N, C, D, H, W]` tensor (odd sizes floored,
/// NaN propagating). For channels-last bf16 with channels in eights (the
/// classifier's inference on the CPU) an SSE2 kernel in the shim, without
/// the int64 indices libtorch's CPU `max_pool3d` computes and drops (four
/// times the output's bytes in bf16; with 8 channels its kernel also falls
/// off its vector path): 3–4× faster there. Otherwise libtorch's.
pub fn max_pool3d_2x(x: &Tensor) -> Result<Tensor, Error> {
    let mut out = std::ptr::null_mut();
    // SAFETY: `x` is a live tensor borrowed for the call; `out` receives a
    // fresh heap `at::Tensor` on success, handed to `Tensor::from_ptr` once.
    unsafe {
        check(ffi::tex_max_pool3d_2x(x.as_ptr(), &mut out))?;
        Ok(Tensor::from_ptr(out))
    }
}
