//! Eval-mode BatchNorm folded into the convolution that reads its output,
//! for the fused bf16 inference path ([`super::fused`]).
//!
//! In eval mode a BatchNorm is a per-channel `scale·x + shift`; a
//! convolution reading `scale·x + shift` is the same convolution with its
//! weights scaled per input channel and a bias grown by the weights times
//! the shift, reading `x`. So the U-Net's BatchNorms (each a full
//! memory-bound pass over an activation, 15% of whole-scan analysis) need
//! not run: their consumers absorb them. Average pooling commutes with the
//! affine, and a concatenation owes each part's own, so the skips fold too.
//!
//! One place is not exact: a 3×3 convolution padded by one reads zeros
//! outside the image where the BatchNorm would have given `shift`. The
//! difference is a constant per output channel for each of the 8 frame
//! regions (edges, corners): computed here, and added on the one-pixel frame
//! after the fused LeakyReLU by [`torch_ext::leaky_frame_shift_`] (which
//! inverts the activation, shifts, and reapplies it). What remains is
//! rounding: the folded weights are rounded to bf16 after the scaling,
//! not before.

use tch::{nn, Kind, Tensor};
use torch_ext::{ConvGeometry, PostOp};

use super::fused;

/// The per-channel `scale·x + shift` a tensor still owes its consumer (float `[C]` each).
pub struct Owed {
    scale: Tensor,
    shift: Tensor,
}

impl Owed {
    /// An eval BatchNorm (running statistics, ε `eps`) as its affine.
    pub fn batch_norm(bn: &nn::BatchNorm, eps: f64) -> Owed {
        let float = |t: &Tensor| t.detach().to_kind(Kind::Float);
        let mean = float(&bn.running_mean);
        let mut scale = (float(&bn.running_var) + eps).rsqrt();
        if let Some(w) = &bn.ws {
            scale *= float(w);
        }
        let mut shift = -(&mean * &scale);
        if let Some(b) = &bn.bs {
            shift += float(b);
        }
        Owed { scale, shift }
    }

    /// Nothing owed by `channels` channels, beside `like`'s device.
    pub fn none(channels: i64, like: &Tensor) -> Owed {
        let opts = (Kind::Float, like.device());
        Owed {
            scale: Tensor::ones([channels], opts),
            shift: Tensor::zeros([channels], opts),
        }
    }

    /// What `Tensor::cat(parts, 1)` owes.
    pub fn cat(parts: &[Owed]) -> Owed {
        let (scales, shifts): (Vec<_>, Vec<_>) = parts.iter().map(|o| (&o.scale, &o.shift)).unzip();
        Owed {
            scale: Tensor::cat(&scales, 0),
            shift: Tensor::cat(&shifts, 0),
        }
    }

    /// `(scale, shift)` per channel, on the host.
    pub fn to_host(&self) -> Vec<(f32, f32)> {
        let host =
            |t: &Tensor| Vec::<f32>::try_from(t.to_device(tch::Device::Cpu)).unwrap_or_default();
        host(&self.scale)
            .into_iter()
            .zip(host(&self.shift))
            .collect()
    }
}

/// `post(conv(owed(x)))` with `owed` folded into the convolution, in `kind`.
/// Folds exactly with no padding; with a 3×3 kernel padded by one under a
/// LeakyReLU, the frame is corrected as the module says; any other padding
/// (or an image under 2×2) applies the affine first instead.
pub fn conv(
    x: &Tensor,
    layer: &nn::Conv2D,
    owed: Option<&Owed>,
    geometry: &ConvGeometry,
    post: PostOp,
    kind: Kind,
) -> Result<Tensor, torch_ext::Error> {
    let Some(owed) = owed else {
        return fused::conv(x, layer, geometry, post, kind);
    };
    let padded = geometry.padding.iter().any(|&p| p != 0);
    let (h, w) = (x.size()[2], x.size()[3]);
    let frame = match post {
        PostOp::LeakyRelu(slope) if frame_fixable(layer, geometry) && h >= 2 && w >= 2 => {
            Some(slope)
        }
        _ => None,
    };
    if padded && frame.is_none() {
        let x = (x.to_kind(Kind::Float) * channel_view(&owed.scale) + channel_view(&owed.shift))
            .to_kind(kind);
        return fused::conv(&x, layer, geometry, post, kind);
    }
    let ws = layer.ws.detach().to_kind(Kind::Float);
    // Σ_c W[o, c, ky, kx]·shift[c]: what the shift adds through each tap.
    let taps = (&ws * channel_view(&owed.shift)).sum_dim_intlist(1, false, Kind::Float);
    let mut bias = taps.sum_dim_intlist([1, 2].as_slice(), false, Kind::Float);
    if let Some(b) = &layer.bs {
        bias += b.detach().to_kind(Kind::Float);
    }
    let weight = (ws * channel_view(&owed.scale)).to_kind(kind);
    let mut y = torch_ext::conv_pointwise(x, &weight, Some(&bias), geometry, post)?;
    if let Some(slope) = frame {
        torch_ext::leaky_frame_shift_(&mut y, &frame_corrections(&taps), slope)?;
    }
    Ok(y)
}

/// A 3×3 kernel padded by one, stride and dilation 1, not grouped: the
/// shape [`frame_corrections`] knows.
fn frame_fixable(layer: &nn::Conv2D, geometry: &ConvGeometry) -> bool {
    layer.ws.size()[2..] == [3, 3]
        && geometry.padding.iter().all(|&p| p == 1)
        && geometry.stride.iter().all(|&s| s == 1)
        && geometry.dilation.iter().all(|&d| d == 1)
        && geometry.groups == 1
}

/// `[9, O]`: for each frame region (3·row class + column class; 0 first,
/// 1 inner, 2 last) what the folded bias added through the taps that fall
/// on the padding, negated. `taps` is `[O, 3, 3]`.
fn frame_corrections(taps: &Tensor) -> Tensor {
    // outside[region][tap]: tap (ky, kx) reads the padding in that region.
    let mut outside = [[0f32; 9]; 9];
    for (region, row) in outside.iter_mut().enumerate() {
        let (rc, cc) = (region / 3, region % 3);
        for (tap, cell) in row.iter_mut().enumerate() {
            let (ky, kx) = (tap / 3, tap % 3);
            let off_row = (rc == 0 && ky == 0) || (rc == 2 && ky == 2);
            let off_col = (cc == 0 && kx == 0) || (cc == 2 && kx == 2);
            *cell = if off_row || off_col { -1.0 } else { 0.0 };
        }
    }
    let outside = Tensor::from_slice(outside.as_flattened())
        .reshape([9, 9])
        .to_device(taps.device());
    outside.matmul(&taps.reshape([taps.size()[0], 9]).transpose(0, 1))
}

/// `[C]` as `[1, C, 1, 1]`, to broadcast over an NCHW tensor or conv weight's input channels.
fn channel_view(t: &Tensor) -> Tensor {
    t.reshape([1, -1, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::Module, Device};

    /// A BatchNorm with made-up running statistics and affine weights.
    fn batch_norm(vs: &nn::VarStore, c: i64) -> nn::BatchNorm {
        let bn = nn::batch_norm2d(vs.root() / "bn", c, Default::default());
        tch::no_grad(|| {
            let opts = (Kind::Float, Device::Cpu);
            bn.running_mean
                .shallow_clone()
                .copy_(&(Tensor::randn([c], opts) * 3.0));
            bn.running_var
                .shallow_clone()
                .copy_(&(Tensor::rand([c], opts) * 4.0 + 0.1));
            bn.ws
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&(Tensor::randn([c], opts)));
            bn.bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&(Tensor::randn([c], opts)));
        });
        bn
    }

    /// fp32 end to end, so the fold must match BatchNorm-then-conv to
    /// float rounding, frame included.
    fn folded_matches_plain(padding: i64, kernel: i64, size: i64) {
        tch::manual_seed(11);
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = batch_norm(&vs, 5);
        let cfg = nn::ConvConfig {
            padding,
            ..Default::default()
        };
        let layer = nn::conv2d(vs.root() / "conv", 5, 6, kernel, cfg);
        let x = Tensor::randn([2, 5, size, size + 1], (Kind::Float, Device::Cpu));
        let slope = 0.01;
        let plain = layer.forward(&x.apply_t(&bn, false)).leaky_relu();
        let geometry = ConvGeometry::same(2, padding);
        let owed = Owed::batch_norm(&bn, 1e-5);
        let folded = tch::no_grad(|| {
            conv(
                &x,
                &layer,
                Some(&owed),
                &geometry,
                PostOp::LeakyRelu(slope),
                Kind::Float,
            )
        })
        .unwrap();
        let diff = (&folded - &plain).abs().max().double_value(&[]);
        assert!(
            diff < 1e-4,
            "padding {padding}, kernel {kernel}, {size}: {diff}"
        );
    }

    #[test]
    fn a_folded_batch_norm_is_the_batch_norm_then_the_conv_frame_included() {
        folded_matches_plain(1, 3, 6);
        folded_matches_plain(1, 3, 2);
        folded_matches_plain(0, 3, 6);
        folded_matches_plain(0, 1, 4);
        // Padded otherwise: the affine is applied first, still equal.
        folded_matches_plain(2, 5, 6);
    }
}
