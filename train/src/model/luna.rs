//! LunaModel: the book's chapter 11–12 candidate classifier,
//! plus the chapter 8 variants (width, depth, dropout, batch norm in the
//! blocks, residual blocks) chosen by a [`ModelConfig`].
//!
//! Parameter paths mirror the book's PyTorch `state_dict` keys
//! (`tail_batchnorm.weight`, `block1.conv1.weight`, …, `head_linear.bias`) so
//! a checkpoint written here loads into the book's `LunaModel` unchanged.
//! The default configuration is exactly the book's model; variants add
//! `blockN.batchnorm{1,2}` and `blockN.shortcut` entries.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};
use torch_ext::{ConvGeometry, PostOp};

use super::fused;

/// Input crop, (depth, height, width) = (index, row, column).
pub const INPUT_SHAPE: [i64; 3] = [32, 48, 48];
/// Channels of the first block; each further block doubles them.
const FIRST_BLOCK_CHANNELS: i64 = 8;
/// 64 channels × (32/16) × (48/16) × (48/16) after four 2× poolings.
pub const FLAT_FEATURES: i64 = 64 * 2 * 3 * 3;
pub const NUM_CLASSES: i64 = 2;

/// The architecture: the book's LunaModel by default.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Channel multiplier: blocks have 8K, 16K, 32K, … channels.
    pub width: i64,
    /// Number of conv blocks, each halving every spatial axis.
    pub depth: usize,
    /// Dropout probability on the flattened features, before the head.
    pub dropout: f64,
    /// BatchNorm3d after each conv inside the blocks.
    pub block_batchnorm: bool,
    /// A skip connection around each block's two convs (1×1×1 conv on the
    /// shortcut where the channel count changes).
    pub residual: bool,
    /// How HU values are brought to the network's scale (chapter 12,
    /// exercise 5).
    pub input_norm: InputNorm,
    /// `fixed` and `sqrt`: `y = (HU + offset) / scale`.
    pub input_offset: f64,
    pub input_scale: f64,
}

/// `--input-norm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputNorm {
    /// The book's `tail_batchnorm`: learned, from batch statistics.
    #[default]
    BatchNorm,
    /// `(HU + offset) / scale`, no parameters.
    Fixed,
    /// The fixed map, then a signed square root `sign(y)·sqrt(|y|)`, which
    /// compresses bone and metal while spreading the soft-tissue range.
    Sqrt,
}

/// HU → (HU + 1000) / 1000: air 0, water 1.
pub const DEFAULT_INPUT_OFFSET: f64 = 1000.0;
pub const DEFAULT_INPUT_SCALE: f64 = 1000.0;

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            width: 1,
            depth: 4,
            dropout: 0.0,
            block_batchnorm: false,
            residual: false,
            input_norm: InputNorm::BatchNorm,
            input_offset: DEFAULT_INPUT_OFFSET,
            input_scale: DEFAULT_INPUT_SCALE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelConfigError {
    #[error("width {0}: must be at least 1")]
    Width(i64),
    #[error("depth {depth}: must be at least 1, and {depth} halvings of the {shape:?} crop leave an axis empty")]
    Depth { depth: usize, shape: [i64; 3] },
    #[error("dropout {0}: must be in [0, 1)")]
    Dropout(f64),
    #[error("--input-offset {offset} / --input-scale {scale}: both must be finite and the scale nonzero")]
    InputScale { offset: f64, scale: f64 },
}

impl ModelConfig {
    /// Rejects settings that cannot build a model for `input` crops.
    pub fn validate(&self, input: [i64; 3]) -> Result<(), ModelConfigError> {
        if self.width < 1 {
            return Err(ModelConfigError::Width(self.width));
        }
        if self.depth == 0 || self.depth >= 63 || input.iter().any(|&d| d >> self.depth == 0) {
            return Err(ModelConfigError::Depth {
                depth: self.depth,
                shape: input,
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelConfigError::Dropout(self.dropout));
        }
        if !(self.input_offset.is_finite()
            && self.input_scale.is_finite()
            && self.input_scale != 0.0)
        {
            return Err(ModelConfigError::InputScale {
                offset: self.input_offset,
                scale: self.input_scale,
            });
        }
        Ok(())
    }

    /// Output channels of each block.
    pub fn block_channels(&self) -> Vec<i64> {
        (0..self.depth)
            .map(|i| (FIRST_BLOCK_CHANNELS * self.width) << i)
            .collect()
    }

    /// Features the head sees for `input` crops: last block's channels times
    /// what `depth` floor-halvings leave of each axis.
    pub fn flat_features(&self, input: [i64; 3]) -> i64 {
        let channels = self.block_channels().last().copied().unwrap_or(1);
        channels * input.iter().map(|&d| d >> self.depth).product::<i64>()
    }

    /// Is this the book's LunaModel?
    pub fn is_book(&self) -> bool {
        *self == ModelConfig::default()
    }
}

/// How conv/linear biases are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BiasInit {
    /// `uniform(-1/sqrt(fan_out), +1/sqrt(fan_out))`: what the book meant.
    Uniform,
    /// `normal(mean=-1/sqrt(fan_out), std=1/sqrt(fan_out))`: what the book's
    /// `nn.init.normal_(m.bias, -bound, bound)` actually does (its bug).
    Book,
}

/// PyTorch's BatchNorm starts at the identity (weight 1); tch's default is uniform.
fn batch_norm(path: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm3d(
        path,
        channels,
        nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        },
    )
}

#[derive(Debug)]
struct LunaBlock {
    conv1: nn::Conv3D,
    conv2: nn::Conv3D,
    batchnorms: Option<(nn::BatchNorm, nn::BatchNorm)>,
    /// `Some(None)`: identity skip; `Some(Some(conv))`: 1×1×1 projection.
    shortcut: Option<Option<nn::Conv3D>>,
}

impl LunaBlock {
    fn new(
        path: &nn::Path,
        in_channels: i64,
        out_channels: i64,
        config: &ModelConfig,
        bias: BiasInit,
    ) -> Self {
        let cfg = nn::ConvConfig {
            padding: 1,
            // A BatchNorm right after a conv subtracts the batch mean, so a
            // conv bias there is dead weight whose gradient is zero up to
            // rounding (it sometimes did not move at all): leave it out, as
            // ResNets do.
            bias: !config.block_batchnorm,
            ..Default::default()
        };
        let conv1 = nn::conv3d(path / "conv1", in_channels, out_channels, 3, cfg);
        let conv2 = nn::conv3d(path / "conv2", out_channels, out_channels, 3, cfg);
        init_weight_and_bias(&conv1.ws, conv1.bs.as_ref(), bias);
        init_weight_and_bias(&conv2.ws, conv2.bs.as_ref(), bias);
        let batchnorms = config.block_batchnorm.then(|| {
            (
                batch_norm(path / "batchnorm1", out_channels),
                batch_norm(path / "batchnorm2", out_channels),
            )
        });
        let shortcut = config.residual.then(|| {
            (in_channels != out_channels).then(|| {
                let conv = nn::conv3d(
                    path / "shortcut",
                    in_channels,
                    out_channels,
                    1,
                    Default::default(),
                );
                init_weight_and_bias(&conv.ws, conv.bs.as_ref(), bias);
                conv
            })
        });
        LunaBlock {
            conv1,
            conv2,
            batchnorms,
            shortcut,
        }
    }

    /// The block's learned tensors (BatchNorm statistics are not).
    fn parameters(&self) -> Vec<&Tensor> {
        let mut out = vec![&self.conv1.ws, &self.conv2.ws];
        out.extend(self.conv1.bs.iter().chain(self.conv2.bs.iter()));
        if let Some((bn1, bn2)) = &self.batchnorms {
            out.extend([bn1, bn2].into_iter().flat_map(batch_norm_parameters));
        }
        if let Some(Some(projection)) = &self.shortcut {
            out.push(&projection.ws);
            out.extend(projection.bs.iter());
        }
        out
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.apply(&self.conv1);
        if let Some((bn1, _)) = &self.batchnorms {
            y = bn1.forward_t(&y, train);
        }
        // In place, as the book's `ReLU(inplace=True)`: no conv needs its
        // output for backward, and a second activation-sized buffer per
        // ReLU cost ~10% of the bf16 step in memory traffic.
        y = y.relu_().apply(&self.conv2);
        if let Some((_, bn2)) = &self.batchnorms {
            y = bn2.forward_t(&y, train);
        }
        // ResNet order: add the shortcut before the second ReLU.
        let mut y = match &self.shortcut {
            Some(Some(projection)) => y + x.apply(projection),
            Some(None) => y + x,
            None => y,
        };
        y.relu_()
            .max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false)
    }
}

impl LunaBlock {
    /// [`LunaBlock::forward`] in eval mode through [`fused`] (the book's
    /// plain block only: conv+ReLU twice, then the pool).
    fn forward_fused(&self, x: &Tensor, kind: Kind) -> Result<Tensor, torch_ext::Error> {
        let same = ConvGeometry::same(3, 1);
        let conv = |x: &Tensor, c: &nn::Conv3D| fused::conv(x, c, &same, PostOp::Relu, kind);
        let y = conv(&conv(x, &self.conv1)?, &self.conv2)?;
        // The book's MaxPool3d(2, 2), without the indices libtorch's computes.
        torch_ext::max_pool3d_2x(&y)
    }

    fn is_plain(&self) -> bool {
        self.batchnorms.is_none() && self.shortcut.is_none()
    }
}

#[derive(Debug)]
pub struct LunaModel {
    /// `None` for the fixed input maps.
    tail_batchnorm: Option<nn::BatchNorm>,
    input_norm: InputNorm,
    input_offset: f64,
    input_scale: f64,
    blocks: Vec<LunaBlock>,
    dropout: f64,
    head_linear: nn::Linear,
    /// How many of [`block_names`], from the first, are frozen: their
    /// parameters need no gradient and their BatchNorms keep their
    /// statistics (eval mode) while the rest trains.
    frozen: usize,
}

/// The top-level module of the input BatchNorm and of the head, as the
/// book's `state_dict` names them.
pub const TAIL_BLOCK: &str = "tail_batchnorm";
pub const HEAD_BLOCK: &str = "head_linear";

/// The top-level modules of `config`'s model that hold parameters, in
/// forward order: chapter 14's `model_blocks`, whose last N fine-tuning
/// trains (`tail_batchnorm`, `block1`…, `head_linear` for the book's).
pub fn block_names(config: &ModelConfig) -> Vec<String> {
    let tail = (config.input_norm == InputNorm::BatchNorm).then(|| TAIL_BLOCK.to_owned());
    tail.into_iter()
        .chain((1..=config.depth).map(|i| format!("block{i}")))
        .chain([HEAD_BLOCK.to_owned()])
        .collect()
}

/// The block a `state_dict` name belongs to (`block4` of `block4.conv1.weight`).
pub fn block_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

fn batch_norm_parameters(bn: &nn::BatchNorm) -> impl Iterator<Item = &Tensor> {
    bn.ws.iter().chain(bn.bs.iter())
}

impl LunaModel {
    /// The book's model under `root` with the book's initialisation, drawing
    /// from libtorch's global generator (seed it with `tch::manual_seed`).
    pub fn new(root: &nn::Path, bias: BiasInit) -> Self {
        Self::with_config(root, &ModelConfig::default(), bias)
    }

    /// A variant for [`INPUT_SHAPE`] crops; `config` must pass
    /// [`ModelConfig::validate`] (the flatten size would be 0 otherwise).
    pub fn with_config(root: &nn::Path, config: &ModelConfig, bias: BiasInit) -> Self {
        let tail_batchnorm = (config.input_norm == InputNorm::BatchNorm)
            .then(|| batch_norm(root / "tail_batchnorm", 1));
        let mut blocks = Vec::with_capacity(config.depth);
        let mut in_channels = 1;
        for (i, out_channels) in config.block_channels().into_iter().enumerate() {
            let path = root / format!("block{}", i + 1);
            blocks.push(LunaBlock::new(
                &path,
                in_channels,
                out_channels,
                config,
                bias,
            ));
            in_channels = out_channels;
        }
        let head_linear = nn::linear(
            root / "head_linear",
            config.flat_features(INPUT_SHAPE),
            NUM_CLASSES,
            Default::default(),
        );
        init_weight_and_bias(&head_linear.ws, head_linear.bs.as_ref(), bias);
        LunaModel {
            tail_batchnorm,
            input_norm: config.input_norm,
            input_offset: config.input_offset,
            input_scale: config.input_scale,
            blocks,
            dropout: config.dropout,
            head_linear,
            frozen: 0,
        }
    }

    /// Fine-tuning's freeze: every block but the last `trainable` of
    /// [`block_names`] stops requiring gradients (so an optimizer made
    /// afterwards leaves it alone, weight decay and momentum included) and
    /// runs in eval mode, its BatchNorm statistics kept as they were
    /// loaded. The book's `model.train()` would go on updating a frozen
    /// tail BatchNorm's statistics; here a frozen block is fixed whole.
    pub fn freeze_all_but_last(&mut self, trainable: usize) -> Result<(), tch::TchError> {
        let tail = usize::from(self.tail_batchnorm.is_some());
        let total = tail + self.blocks.len() + 1;
        self.frozen = total.saturating_sub(trainable.max(1));
        let mut frozen: Vec<&Tensor> = Vec::new();
        if self.frozen > 0 {
            frozen.extend(self.tail_batchnorm.iter().flat_map(batch_norm_parameters));
        }
        let blocks = self.frozen.saturating_sub(tail).min(self.blocks.len());
        frozen.extend(self.blocks[..blocks].iter().flat_map(LunaBlock::parameters));
        for t in frozen {
            // In place: the returned handle shares the variable's flag.
            t.f_set_requires_grad(false).map(drop)?;
        }
        Ok(())
    }

    /// Whether block `k` of [`block_names`] runs in training mode.
    fn trains(&self, k: usize, train: bool) -> bool {
        train && k >= self.frozen
    }

    /// `[N,1,32,48,48]` float HU → (logits `[N,2]`, softmax `[N,2]`).
    /// `train` selects BatchNorm's batch statistics (and updates its running
    /// averages) versus the running averages, and switches dropout on.
    pub fn forward(&self, input: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = self.normalize_input(input, self.trains(0, train));
        let first = usize::from(self.tail_batchnorm.is_some());
        for (k, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, self.trains(first + k, train));
        }
        let mut x = x.flatten(1, -1);
        if self.dropout > 0.0 {
            x = x.dropout(self.dropout, train);
        }
        let logits = x.apply(&self.head_linear);
        let probs = logits.softmax(1, Kind::Float);
        (logits, probs)
    }
}

impl LunaModel {
    /// The softmax `[N,2]` (fp32) of [`LunaModel::forward`] in eval mode,
    /// each conv and its ReLU one oneDNN primitive in `kind` ([`fused`]);
    /// `None` for the variants it does not cover (block BatchNorm,
    /// residual shortcuts), which take the plain path.
    pub fn forward_fused(
        &self,
        input: &Tensor,
        kind: Kind,
    ) -> Option<Result<Tensor, torch_ext::Error>> {
        if !self.blocks.iter().all(LunaBlock::is_plain) {
            return None;
        }
        let run = || {
            let mut x = self.normalize_input(input, false).to_kind(kind);
            for block in &self.blocks {
                x = block.forward_fused(&x, kind)?;
            }
            let head = &self.head_linear;
            let bias = head.bs.as_ref().map(|b| fused::cast(b, kind));
            let logits = x
                .flatten(1, -1)
                .linear(&fused::cast(&head.ws, kind), bias.as_ref());
            Ok(logits.softmax(1, Kind::Float))
        };
        Some(run())
    }

    /// Each block's output for float HU `input`, in eval mode and without
    /// autograd: what `--tb-activations` draws. [`LunaModel::forward`] stays
    /// the only path training and inference take.
    pub fn forward_blocks(&self, input: &Tensor) -> Vec<Tensor> {
        tch::no_grad(|| {
            let mut x = self.normalize_input(input, false);
            let mut outputs = Vec::with_capacity(self.blocks.len());
            for block in &self.blocks {
                x = block.forward(&x, false);
                outputs.push(x.shallow_clone());
            }
            outputs
        })
    }

    /// The tail: HU to the scale the blocks see.
    fn normalize_input(&self, input: &Tensor, train: bool) -> Tensor {
        if let Some(bn) = &self.tail_batchnorm {
            return bn.forward_t(input, train);
        }
        let y = (input + self.input_offset) / self.input_scale;
        match self.input_norm {
            InputNorm::Sqrt => y.sign() * y.abs().sqrt(),
            InputNorm::BatchNorm | InputNorm::Fixed => y,
        }
    }
}

/// `kaiming_normal_(mode='fan_out', nonlinearity='relu')` on the weight and
/// the chosen bias scheme, both with `fan_out = out_features × kernel volume`.
fn init_weight_and_bias(weight: &Tensor, bias: Option<&Tensor>, scheme: BiasInit) {
    let size = weight.size();
    let fan_out: i64 = size[0] * size[2..].iter().product::<i64>();
    let fan_out = fan_out as f64;
    let gain = 2f64.sqrt();
    tch::no_grad(|| {
        let _ = weight.shallow_clone().normal_(0.0, gain / fan_out.sqrt());
        if let Some(bias) = bias {
            let bound = 1.0 / fan_out.sqrt();
            let _ = match scheme {
                BiasInit::Uniform => bias.shallow_clone().uniform_(-bound, bound),
                BiasInit::Book => bias.shallow_clone().normal_(-bound, bound),
            };
        }
    });
}

/// Number of trainable scalars.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(Tensor::numel)
        .sum::<usize>() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn model(bias: BiasInit) -> (nn::VarStore, LunaModel) {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = LunaModel::new(&vs.root(), bias);
        (vs, m)
    }

    #[test]
    fn has_the_books_222220_parameters_under_state_dict_names() {
        let (vs, _) = model(BiasInit::Uniform);
        assert_eq!(parameter_count(&vs), 222_220);
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        let mut expected = vec![
            "tail_batchnorm.weight".to_owned(),
            "tail_batchnorm.bias".to_owned(),
            "tail_batchnorm.running_mean".to_owned(),
            "tail_batchnorm.running_var".to_owned(),
            "head_linear.weight".to_owned(),
            "head_linear.bias".to_owned(),
        ];
        for b in 1..=4 {
            for c in 1..=2 {
                for p in ["weight", "bias"] {
                    expected.push(format!("block{b}.conv{c}.{p}"));
                }
            }
        }
        expected.sort();
        assert_eq!(names, expected);
        let vars = vs.variables();
        assert_eq!(vars["block4.conv2.weight"].size(), vec![64, 64, 3, 3, 3]);
        assert_eq!(vars["head_linear.weight"].size(), vec![2, 1152]);
        assert_eq!(vars["tail_batchnorm.weight"].double_value(&[0]), 1.0);
    }

    fn variant_parameters(config: ModelConfig) -> i64 {
        config.validate(INPUT_SHAPE).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = LunaModel::with_config(&vs.root(), &config, BiasInit::Uniform);
        parameter_count(&vs)
    }

    #[test]
    fn variants_have_the_hand_counted_parameters() {
        let book = ModelConfig::default();
        assert_eq!(variant_parameters(book), 222_220);
        // Dropout has no parameters.
        let dropout = ModelConfig {
            dropout: 0.3,
            ..book
        };
        assert_eq!(variant_parameters(dropout), 222_220);
        // Width 2: channels 16,32,64,128. Tail 2; convs (out·in·27 + out):
        // 448 + 6,928 | 13,856 + 27,680 | 55,360 + 110,656 | 221,312 + 442,496;
        // head 128·2·3·3 = 2,304 features → 2,304·2 + 2 = 4,610. Sum 883,348.
        let wide = ModelConfig { width: 2, ..book };
        assert_eq!(variant_parameters(wide), 883_348);
        // Depth 3: the book's first three blocks (2 + 224 + 1,736 + 3,472 +
        // 6,928 + 13,856 + 27,680 = 53,898) and a head over 32·4·6·6 = 4,608
        // features (9,218). Sum 63,116.
        let shallow = ModelConfig { depth: 3, ..book };
        assert_eq!(variant_parameters(shallow), 63_116);
        // Two BatchNorm3d per block, weight + bias per channel:
        // 2·2·(8+16+32+64) = 480 more; the convs before them lose their
        // biases, 2·(8+16+32+64) = 240 fewer.
        let bn = ModelConfig {
            block_batchnorm: true,
            ..book
        };
        assert_eq!(variant_parameters(bn), 222_460);
        // Every block changes channels, so each gets a 1×1×1 projection:
        // (8+8) + (128+16) + (512+32) + (2,048+64) = 2,816 more.
        let residual = ModelConfig {
            residual: true,
            ..book
        };
        assert_eq!(variant_parameters(residual), 225_036);
    }

    #[test]
    fn impossible_variants_are_rejected() {
        let book = ModelConfig::default();
        // 32 >> 6 = 0: six halvings leave nothing of the index axis.
        assert!(ModelConfig { depth: 6, ..book }
            .validate(INPUT_SHAPE)
            .is_err());
        assert!(ModelConfig { depth: 5, ..book }
            .validate(INPUT_SHAPE)
            .is_ok());
        assert!(ModelConfig { depth: 0, ..book }
            .validate(INPUT_SHAPE)
            .is_err());
        assert!(ModelConfig { width: 0, ..book }
            .validate(INPUT_SHAPE)
            .is_err());
        assert!(ModelConfig {
            dropout: 1.0,
            ..book
        }
        .validate(INPUT_SHAPE)
        .is_err());
    }

    #[test]
    fn forward_gives_logits_and_probabilities_per_sample() {
        let (_vs, m) = model(BiasInit::Uniform);
        let x = Tensor::randn([3, 1, 32, 48, 48], (Kind::Float, Device::Cpu)) * 500.0;
        let (logits, probs) = m.forward(&x, false);
        assert_eq!(logits.size(), vec![3, 2]);
        assert_eq!(probs.size(), vec![3, 2]);
        let row_sums = probs.sum_dim_intlist(1, false, Kind::Float);
        assert!(row_sums.allclose(
            &Tensor::ones([3], (Kind::Float, Device::Cpu)),
            1e-5,
            1e-6,
            false
        ));
    }

    #[test]
    fn block_outputs_halve_each_axis_and_match_the_forward_path() {
        let (_vs, m) = model(BiasInit::Uniform);
        let x = Tensor::randn([2, 1, 32, 48, 48], (Kind::Float, Device::Cpu)) * 500.0;
        let blocks = m.forward_blocks(&x);
        let shapes: Vec<Vec<i64>> = blocks.iter().map(Tensor::size).collect();
        assert_eq!(
            shapes,
            [
                [2, 8, 16, 24, 24],
                [2, 16, 8, 12, 12],
                [2, 32, 4, 6, 6],
                [2, 64, 2, 3, 3]
            ]
        );
        assert!(blocks.iter().all(|b| !b.requires_grad()));
        let (logits, _) = m.forward(&x, false);
        let from_blocks = blocks[3].flatten(1, -1).apply(&m.head_linear);
        assert!(logits.allclose(&from_blocks, 1e-5, 1e-5, false));
    }

    #[test]
    fn weights_follow_kaiming_fan_out_and_biases_the_chosen_scheme() {
        let (vs, _) = model(BiasInit::Uniform);
        let vars = vs.variables();
        // fan_out = 64 * 27: std sqrt(2/1728) ≈ 0.0340 over 110,592 draws.
        let w = &vars["block4.conv2.weight"];
        let std = w.std(true).double_value(&[]);
        assert!((std - (2.0f64 / 1728.0).sqrt()).abs() < 0.001, "std {std}");
        // fan_out = 8 * 27 = 216: bound ≈ 0.068.
        let b = &vars["block1.conv1.bias"];
        let bound = 1.0 / 216f64.sqrt();
        assert!(b.abs().max().double_value(&[]) <= bound);

        let (vs, _) = model(BiasInit::Book);
        let b = &vs.variables()["block4.conv2.bias"];
        let bound = 1.0 / 1728f64.sqrt();
        let mean = b.mean(Kind::Float).double_value(&[]);
        // 64 draws of normal(-bound, bound): the mean sits near -bound, not 0.
        assert!(
            (mean + bound).abs() < 0.5 * bound,
            "mean {mean}, bound {bound}"
        );
    }

    #[test]
    fn fixed_and_sqrt_input_maps_replace_the_tail_batchnorm() {
        let x = Tensor::from_slice(&[-1000.0f32, 0.0, 3000.0, -2000.0]).view([4, 1, 1, 1, 1]);
        let mut outputs = Vec::new();
        for norm in [InputNorm::Fixed, InputNorm::Sqrt] {
            let config = ModelConfig {
                input_norm: norm,
                ..ModelConfig::default()
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let m = LunaModel::with_config(&vs.root(), &config, BiasInit::Uniform);
            assert!(
                vs.variables()
                    .keys()
                    .all(|k| !k.starts_with("tail_batchnorm")),
                "{norm:?} has no learned tail"
            );
            assert_eq!(parameter_count(&vs), 222_220 - 2);
            outputs.push(Vec::<f32>::try_from(m.normalize_input(&x, true).flatten(0, -1)).unwrap());
        }
        // (HU + 1000) / 1000, then sign(y)·sqrt(|y|).
        assert_eq!(outputs[0], [0.0, 1.0, 4.0, -1.0]);
        assert_eq!(outputs[1], [0.0, 1.0, 2.0, -1.0]);
    }
}
