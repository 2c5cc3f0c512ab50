//! The book's chapter 13 segmentation model, `UNetWrapper`: a BatchNorm2d
//! over the input slices, then the U-Net of `util/unet.py` (jvanvugt's:
//! per level two 3×3 convs, each followed by LeakyReLU and BatchNorm2d;
//! 2× average pooling down, a 2×2 stride-2 transposed conv up, the skip
//! concatenated after it), a 1×1 conv and a sigmoid.
//!
//! Parameter paths are the book's `state_dict` keys (`input_batchnorm.*`,
//! `unet.down_path.{i}.block.{0,2,3,5}.*`, `unet.up_path.{i}.up.*`,
//! `unet.up_path.{i}.conv_block.block.{0,2,3,5}.*`, `unet.last.*`), so the
//! book's `seg_*.state` weights and PyTorch exports of ours load unchanged.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};
use torch_ext::{ConvGeometry, PostOp};

use super::bn_fold::{self, Owed};
use super::fused;

/// The architecture; the default is the book's
/// `UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True,
/// batch_norm=True, up_mode='upconv')`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UNetConfig {
    /// Input slices: the centre one and its neighbours.
    pub in_channels: i64,
    pub n_classes: i64,
    /// Levels; each but the last halves the slice.
    pub depth: usize,
    /// Level `i` has `2^(wf + i)` channels.
    pub wf: u32,
    /// 3×3 convs padded to keep the size (the book's `padding=True`).
    pub padding: bool,
    pub batch_norm: bool,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            in_channels: 7,
            n_classes: 1,
            depth: 3,
            wf: 4,
            padding: true,
            batch_norm: true,
        }
    }
}

/// The book's init (`UNetWrapper._init_weights`): Kaiming normal with
/// `fan_out` for conv and transposed-conv weights, biases N(−b, b) with
/// b = 1/√fan_out. PyTorch's fan_out is the weight's dim 0 times the
/// kernel: the output channels of a conv, the *input* channels of a
/// transposed conv (whose weight is `[in, out, k, k]`).
fn kaiming_fan_out(dim0: i64, kernel: i64) -> (nn::Init, nn::Init) {
    let fan_out = (dim0 * kernel * kernel) as f64;
    let gain = 2f64.sqrt();
    let bound = 1.0 / fan_out.sqrt();
    (
        nn::Init::Randn {
            mean: 0.0,
            stdev: gain / fan_out.sqrt(),
        },
        nn::Init::Randn {
            mean: -bound,
            stdev: bound,
        },
    )
}

fn conv(path: nn::Path, c_in: i64, c_out: i64, kernel: i64, padding: i64) -> nn::Conv2D {
    let (ws_init, bs_init) = kaiming_fan_out(c_out, kernel);
    let config = nn::ConvConfig {
        padding,
        ws_init,
        bs_init,
        ..Default::default()
    };
    nn::conv2d(path, c_in, c_out, kernel, config)
}

/// `UNetConvBlock`: conv → LeakyReLU → BN, twice (`block.{0,2,3,5}`).
#[derive(Debug)]
struct ConvBlock {
    conv1: nn::Conv2D,
    bn1: Option<nn::BatchNorm>,
    conv2: nn::Conv2D,
    bn2: Option<nn::BatchNorm>,
}

impl ConvBlock {
    fn new(path: nn::Path, c_in: i64, c_out: i64, config: &UNetConfig) -> Self {
        let block = &path / "block";
        let padding = i64::from(config.padding);
        let bn = |i: &str| {
            config
                .batch_norm
                .then(|| nn::batch_norm2d(&block / i, c_out, Default::default()))
        };
        ConvBlock {
            conv1: conv(&block / "0", c_in, c_out, 3, padding),
            bn1: bn("2"),
            conv2: conv(&block / "3", c_out, c_out, 3, padding),
            bn2: bn("5"),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = x.apply(&self.conv1).leaky_relu();
        if let Some(bn) = &self.bn1 {
            x = x.apply_t(bn, train);
        }
        x = x.apply(&self.conv2).leaky_relu();
        if let Some(bn) = &self.bn2 {
            x = x.apply_t(bn, train);
        }
        x
    }
}

/// PyTorch's BatchNorm2d default ε, the book's (named so that
/// [`UNet::input_affine`] uses the value the layer was built with).
const BN_EPS: f64 = 1e-5;

/// The book's `nn.LeakyReLU()` slope.
const LEAKY_SLOPE: f64 = 0.01;

impl ConvBlock {
    /// [`ConvBlock::forward_t`] in eval mode through [`fused`], for an
    /// input that still owes `owed` ([`bn_fold`]): each conv and its
    /// LeakyReLU one primitive, each BatchNorm folded into the next conv.
    /// The output still owes the second BatchNorm, returned for its
    /// consumer to fold (or apply).
    fn forward_folded(
        &self,
        x: &Tensor,
        owed: Option<Owed>,
        geometry: &ConvGeometry,
        kind: Kind,
    ) -> Result<(Tensor, Option<&nn::BatchNorm>), torch_ext::Error> {
        let leaky = PostOp::LeakyRelu(LEAKY_SLOPE);
        let y = bn_fold::conv(x, &self.conv1, owed.as_ref(), geometry, leaky, kind)?;
        let y = bn_fold::conv(
            &y,
            &self.conv2,
            owed_by(self.bn1.as_ref()).as_ref(),
            geometry,
            leaky,
            kind,
        )?;
        Ok((y, self.bn2.as_ref()))
    }
}

/// What a tensor that still owes `bn` (the U-Net's BatchNorms, one ε) owes.
fn owed_by(bn: Option<&nn::BatchNorm>) -> Option<Owed> {
    bn.map(|bn| Owed::batch_norm(bn, BN_EPS))
}

/// A block's output and the BatchNorm it still owes.
type Owing<'a> = (Tensor, Option<&'a nn::BatchNorm>);

/// `x` with the BatchNorm it owes applied: for consumers that cannot fold
/// it (the transposed conv, whose 2×2 taps would need a bias per output parity).
fn settle((x, owed): Owing<'_>) -> Tensor {
    match owed {
        Some(bn) => x.apply_t(bn, false),
        None => x,
    }
}

/// `UNetUpBlock` with `up_mode='upconv'`.
#[derive(Debug)]
struct UpBlock {
    up: nn::ConvTranspose2D,
    conv_block: ConvBlock,
}

impl UpBlock {
    fn new(path: nn::Path, c_in: i64, c_out: i64, config: &UNetConfig) -> Self {
        let (ws_init, bs_init) = kaiming_fan_out(c_in, 2);
        let up_config = nn::ConvTransposeConfig {
            stride: 2,
            ws_init,
            bs_init,
            ..Default::default()
        };
        UpBlock {
            up: nn::conv_transpose2d(&path / "up", c_in, c_out, 2, up_config),
            conv_block: ConvBlock::new(&path / "conv_block", c_in, c_out, config),
        }
    }

    /// Up-samples `x`, centre-crops the skip `bridge` to it, concatenates
    /// (up first, as the book) and runs the block.
    fn forward_t(&self, x: &Tensor, bridge: &Tensor, train: bool) -> Tensor {
        let up = x.apply(&self.up);
        let crop = Self::crop(bridge, &up);
        self.conv_block
            .forward_t(&Tensor::cat(&[up, crop], 1), train)
    }

    /// [`UpBlock::forward_t`] in eval mode through [`fused`], the skip's
    /// owed BatchNorm folded into the block's first conv.
    fn forward_folded<'a>(
        &'a self,
        x: &Tensor,
        (bridge, bridge_owes): &Owing<'_>,
        geometry: &ConvGeometry,
        kind: Kind,
    ) -> Result<Owing<'a>, torch_ext::Error> {
        let bias = self.up.bs.as_ref().map(|b| fused::cast(b, kind));
        let weight = fused::cast(&self.up.ws, kind);
        let up = x.conv_transpose2d(&weight, bias.as_ref(), [2, 2], [0, 0], [0, 0], 1, [1, 1]);
        let crop = Self::crop(bridge, &up);
        let owed =
            owed_by(*bridge_owes).map(|skip| Owed::cat(&[Owed::none(up.size()[1], &up), skip]));
        self.conv_block
            .forward_folded(&Tensor::cat(&[up, crop], 1), owed, geometry, kind)
    }

    /// The skip centre-cropped to the up-sampled size.
    fn crop(bridge: &Tensor, up: &Tensor) -> Tensor {
        let (h, w) = (up.size()[2], up.size()[3]);
        let (bh, bw) = (bridge.size()[2], bridge.size()[3]);
        // Crop only when the sizes differ (unpadded convs). A full-size
        // `narrow` is not free: its backward scatters the gradient into a
        // fresh row-major zero tensor, which sent the skip's gradient, and
        // every BatchNorm backward above it, down libtorch's slow
        // mixed-layout path under channels-last (~10% of the step).
        // PyTorch's `bridge[:, :, 0:h, 0:w]` records nothing in that case.
        if (bh, bw) == (h, w) {
            bridge.shallow_clone()
        } else {
            bridge.narrow(2, (bh - h) / 2, h).narrow(3, (bw - w) / 2, w)
        }
    }
}

/// `UNetWrapper`: see the module's documentation.
#[derive(Debug)]
pub struct UNet {
    config: UNetConfig,
    input_batchnorm: nn::BatchNorm,
    down: Vec<ConvBlock>,
    up: Vec<UpBlock>,
    last: nn::Conv2D,
}

impl UNet {
    pub fn new(root: &nn::Path, config: &UNetConfig) -> Self {
        let unet = root / "unet";
        let channels = |i: usize| 1i64 << (config.wf as usize + i);
        let mut prev = config.in_channels;
        let mut down = Vec::with_capacity(config.depth);
        for i in 0..config.depth {
            let path = &unet / "down_path" / i.to_string();
            down.push(ConvBlock::new(path, prev, channels(i), config));
            prev = channels(i);
        }
        let mut up = Vec::new();
        for (k, i) in (0..config.depth.saturating_sub(1)).rev().enumerate() {
            let path = &unet / "up_path" / k.to_string();
            up.push(UpBlock::new(path, prev, channels(i), config));
            prev = channels(i);
        }
        UNet {
            config: *config,
            input_batchnorm: nn::batch_norm2d(
                root / "input_batchnorm",
                config.in_channels,
                nn::BatchNormConfig {
                    eps: BN_EPS,
                    ..Default::default()
                },
            ),
            down,
            up,
            last: conv(&unet / "last", prev, config.n_classes, 1, 0),
        }
    }

    /// The architecture it was built with.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Where its weights live, so callers can put inputs beside them.
    pub fn device(&self) -> tch::Device {
        self.input_batchnorm.running_mean.device()
    }

    /// P(nodule) per pixel `[n, classes, H, W]` for HU slices `x`
    /// `[n, in_channels, H, W]` (H and W multiples of 2^(depth−1));
    /// `train` selects BatchNorm's batch statistics.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.input_batchnorm_t(x, train);
        let mut skips = Vec::with_capacity(self.down.len());
        for (i, block) in self.down.iter().enumerate() {
            x = block.forward_t(&x, train);
            if i + 1 < self.down.len() {
                skips.push(x.shallow_clone());
                x = x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
            }
        }
        for (up, bridge) in self.up.iter().zip(skips.iter().rev()) {
            x = up.forward_t(&x, bridge, train);
        }
        x.apply(&self.last).sigmoid()
    }

    /// The input BatchNorm, run on a contiguous (NCHW) copy of a
    /// channels-last input and the result put back in channels-last:
    /// libtorch's channels-last BatchNorm kernels vectorise over channels,
    /// which 7 planes do not fill, and in a CPU training step (statistics,
    /// forward and the backward for its weights) that one small layer took
    /// ~15% of the time; its contiguous kernels vectorise over pixels.
    fn input_batchnorm_t(&self, x: &Tensor, train: bool) -> Tensor {
        if !torch_ext::is_channels_last(x) || x.size()[1] == 1 {
            return x.apply_t(&self.input_batchnorm, train);
        }
        let y = x.contiguous().apply_t(&self.input_batchnorm, train);
        torch_ext::contiguous_channels_last(&y).unwrap_or(y)
    }

    /// [`UNet::forward_t`] in eval mode, each conv and its activation one
    /// oneDNN primitive in `kind` ([`fused`]): P(nodule) per pixel in `kind`.
    pub fn forward_fused(&self, x: &Tensor, kind: Kind) -> Result<Tensor, torch_ext::Error> {
        let x = x.apply_t(&self.input_batchnorm, false).to_kind(kind);
        self.forward_fused_normalized(&x, kind)
    }

    /// The input BatchNorm in eval mode as a scale and shift per input
    /// plane, `(w / √(var + ε), b − mean · scale)`: a caller that builds the
    /// input itself applies it there, in the same pass ([`UNet::forward_fused_normalized`]).
    pub fn input_affine(&self) -> Vec<(f32, f32)> {
        Owed::batch_norm(&self.input_batchnorm, BN_EPS).to_host()
    }

    /// [`UNet::forward_fused`] from an input already through the input
    /// BatchNorm ([`UNet::input_affine`]) and in `kind`.
    pub fn forward_fused_normalized(
        &self,
        x: &Tensor,
        kind: Kind,
    ) -> Result<Tensor, torch_ext::Error> {
        let geometry = ConvGeometry::same(2, i64::from(self.config.padding));
        let mut x: Owing<'_> = (x.shallow_clone(), None);
        let mut skips = Vec::with_capacity(self.down.len());
        for (i, block) in self.down.iter().enumerate() {
            x = block.forward_folded(&x.0, owed_by(x.1), &geometry, kind)?;
            if i + 1 < self.down.len() {
                // Average pooling commutes with the owed affine: it stays owed.
                let pooled =
                    x.0.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
                let owes = x.1;
                skips.push(std::mem::replace(&mut x, (pooled, owes)));
            }
        }
        for (up, bridge) in self.up.iter().zip(skips.iter().rev()) {
            x = up.forward_folded(&settle(x), bridge, &geometry, kind)?;
        }
        let pointwise = ConvGeometry::same(2, 0);
        bn_fold::conv(
            &x.0,
            &self.last,
            owed_by(x.1).as_ref(),
            &pointwise,
            PostOp::Sigmoid,
            kind,
        )
    }
}
