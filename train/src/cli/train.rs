//! The training flags, and how they override `--config FILE` and the
//! defaults.

use std::path::PathBuf;

use clap::Args;

use crate::config::{
    BalanceSampler, BalanceSchedule, ConfigError, Label, LrSchedule, OptimizerKind, RunConfig,
    Select, SplitBy,
};
use crate::model::compute::{self, MemoryFormat, Precision};
use crate::model::{BiasInit, InputNorm};

/// The training flags. Every setting is optional here: what is not given
/// comes from `--config FILE` or the defaults of [`RunConfig`].
#[derive(Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// Settings from a TOML file (a run's config.toml repeats that run);
    /// flags given as well override it.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,

    /// Cache directory written by `prepcache build` (with --resume: the
    /// run's own cache unless given).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// Number of epochs to train for (a resumed run counts the epochs
    /// already done) [default: 1].
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,

    /// Samples per training step, 1 to 100000 [default: 32].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,

    /// Threads decoding cached crops ahead of the training step, 1 to 256
    /// [default: 2].
    #[arg(long, value_name = "N")]
    pub num_workers: Option<u32>,

    /// Balance the training data: RATIO negatives per positive (1 if no value).
    /// Balanced epochs have 200,000 samples unless --epoch-samples says otherwise.
    /// (A COMMENT right after a bare --balanced would be read as the ratio:
    /// put it first or write --balanced=1.)
    #[arg(long, value_name = "RATIO", num_args = 0..=1, default_missing_value = "1")]
    pub balanced: Option<u32>,

    /// All five augmentations with the book's magnitudes.
    #[arg(long, help_heading = "Augmentation")]
    pub augmented: bool,
    /// Augment by random mirroring along each axis, each with probability P
    /// [bare flag: 0.5].
    #[arg(long, value_name = "P", num_args = 0..=1, require_equals = true, default_missing_value = "0.5", help_heading = "Augmentation")]
    pub augment_flip: Option<f64>,
    /// Augment by random shifts of up to F of the half-extent per axis
    /// [bare flag: 0.1].
    #[arg(long, value_name = "F", num_args = 0..=1, require_equals = true, default_missing_value = "0.1", help_heading = "Augmentation")]
    pub augment_offset: Option<f64>,
    /// Augment by random scaling of up to ±F per axis [bare flag: 0.2].
    #[arg(long, value_name = "F", num_args = 0..=1, require_equals = true, default_missing_value = "0.2", help_heading = "Augmentation")]
    pub augment_scale: Option<f64>,
    /// Augment by a random in-slice rotation of up to ±DEGREES [bare flag:
    /// 180, any angle].
    #[arg(long, value_name = "DEGREES", num_args = 0..=1, require_equals = true, default_missing_value = "180", help_heading = "Augmentation")]
    pub augment_rotate: Option<f64>,
    /// Augment by adding Gaussian noise of SD HU standard deviation [bare
    /// flag: 25].
    #[arg(long, value_name = "SD", num_args = 0..=1, require_equals = true, default_missing_value = "25", help_heading = "Augmentation")]
    pub augment_noise: Option<f64>,
    /// Mixup: blend each training sample and its label with another of the
    /// batch, weight ~ Beta(ALPHA, ALPHA) (0.2-0.4 is usual).
    #[arg(long, value_name = "ALPHA", help_heading = "Augmentation")]
    pub mixup: Option<f64>,
    /// With --mixup: blend positives only with positives (new positives),
    /// leaving negatives as they are.
    #[arg(long, help_heading = "Augmentation")]
    pub mixup_positives: bool,

    /// How a balanced epoch draws: ratio (the book's interleave) or weighted
    /// (random draws with replacement, a positive with probability
    /// 1/(RATIO+1), as torch's WeightedRandomSampler) [default: ratio].
    #[arg(long, value_name = "S", value_parser = parse_serde::<BalanceSampler>)]
    pub balanced_sampler: Option<BalanceSampler>,
    /// The balance ratio by epoch: EPOCH:RATIO pairs, e.g. 1:1,3:2,6:4
    /// (needs --balanced; the ratio in force is logged per epoch).
    #[arg(long, value_name = "SCHEDULE", value_parser = parse_from_str::<BalanceSchedule>)]
    pub balanced_schedule: Option<BalanceSchedule>,

    /// Input normalisation: batchnorm (the book's learned tail), fixed
    /// ((HU + OFFSET) / SCALE) or sqrt (the fixed map, then a signed square
    /// root) [default: batchnorm].
    #[arg(long, value_name = "N", value_parser = parse_serde::<InputNorm>, help_heading = "Model variants")]
    pub input_norm: Option<InputNorm>,
    /// --input-norm fixed/sqrt: added to HU first [default: 1000].
    #[arg(
        long,
        value_name = "HU",
        allow_negative_numbers = true,
        help_heading = "Model variants"
    )]
    pub input_offset: Option<f64>,
    /// --input-norm fixed/sqrt: divides after the offset [default: 1000].
    #[arg(long, value_name = "S", help_heading = "Model variants")]
    pub input_scale: Option<f64>,

    /// Keep the best epoch's checkpoint in <run>/best/ by this validation
    /// metric: f1, f2, f0.5, recall, auc or loss; `eval`/`predict` on the run
    /// folder then use it.
    #[arg(long, value_name = "METRIC", value_parser = parse_serde::<Select>, help_heading = "Epoch selection")]
    pub select: Option<Select>,
    /// With --select: stop after N epochs without a better score.
    #[arg(long, value_name = "N", help_heading = "Epoch selection")]
    pub patience: Option<u32>,
    /// Validate at epoch 1, every N-th epoch and the last epoch only (the
    /// book's segmentation cadence: `train seg` defaults to 5); the epochs
    /// between save a checkpoint without metrics. Default: every epoch.
    #[arg(long, value_name = "N", help_heading = "Epoch selection")]
    pub validate_every: Option<u32>,

    /// Weight and gradient histograms of every parameter in TensorBoard
    /// every N optimizer steps.
    #[arg(long, value_name = "N", help_heading = "TensorBoard")]
    pub tb_histograms_every: Option<u64>,
    /// Images of each block's output (mid-slice) for a few validation
    /// positives and negatives, after each epoch.
    #[arg(long, help_heading = "TensorBoard")]
    pub tb_activations: bool,

    /// TensorBoard run group: runs go to RUNS/<TB_PREFIX>/ [default: p2ch12].
    #[arg(long, value_name = "P")]
    pub tb_prefix: Option<String>,

    /// Root folder for run directories (TensorBoard events, metrics,
    /// checkpoints) [default: runs].
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,

    /// Where to train: auto (CUDA when available), cpu, cuda or cuda:N
    /// [default: auto].
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Optimizer: sgd, adam, adamw or rmsprop (torch.optim semantics)
    /// [default: sgd].
    #[arg(long, value_name = "NAME", value_parser = parse_serde::<OptimizerKind>, help_heading = "Optimizer")]
    pub optimizer: Option<OptimizerKind>,

    /// Learning rate (the peak of a onecycle schedule) [default: 0.001].
    #[arg(long, value_name = "LR", help_heading = "Optimizer")]
    pub lr: Option<f64>,

    /// Momentum of SGD and RMSprop [default: 0.99, the book's SGD; pass 0
    /// for torch's RMSprop default].
    #[arg(long, value_name = "M", help_heading = "Optimizer")]
    pub momentum: Option<f64>,

    /// Nesterov momentum (SGD).
    #[arg(long, help_heading = "Optimizer")]
    pub nesterov: bool,

    /// Adam/AdamW coefficients of the running averages [default: 0.9,0.999].
    #[arg(long, value_name = "B1,B2", value_parser = parse_betas, help_heading = "Optimizer")]
    pub betas: Option<[f64; 2]>,

    /// Adam/AdamW/RMSprop denominator term [default: 1e-8].
    #[arg(long, value_name = "E", help_heading = "Optimizer")]
    pub eps: Option<f64>,

    /// RMSprop smoothing constant [default: 0.99].
    #[arg(long, value_name = "A", help_heading = "Optimizer")]
    pub rmsprop_alpha: Option<f64>,

    /// Learning-rate schedule: constant, step (×--lr-gamma every
    /// --lr-step-epochs), cosine (to 0 at the last epoch) or onecycle
    /// (torch's OneCycleLR) [default: constant].
    #[arg(long, value_name = "S", value_parser = parse_serde::<LrSchedule>, help_heading = "Optimizer")]
    pub lr_schedule: Option<LrSchedule>,

    /// `step` schedule: epochs between decays [default: 1].
    #[arg(long, value_name = "N", help_heading = "Optimizer")]
    pub lr_step_epochs: Option<u32>,

    /// `step` schedule: the decay factor [default: 0.1].
    #[arg(long, value_name = "G", help_heading = "Optimizer")]
    pub lr_gamma: Option<f64>,

    /// Linear learning-rate warm-up over the first N training samples (W
    /// steps): the rate climbs from lr/(W+1) to lr, as torch's LinearLR.
    #[arg(long, value_name = "N", help_heading = "Optimizer")]
    pub warmup_samples: Option<u64>,

    /// cosine and onecycle schedules: the epochs they span, e.g. to stop
    /// early and resume later on the same schedule [default: --epochs of
    /// the run's start, kept when it is resumed].
    #[arg(long, value_name = "N", help_heading = "Optimizer")]
    pub lr_schedule_epochs: Option<u32>,

    /// Every N-th candidate (of the book-ordered list) goes to validation
    /// [default: 10].
    #[arg(long, value_name = "N")]
    pub val_stride: Option<u32>,

    /// What --val-stride counts: `candidate` (every N-th candidate, the
    /// book's chapter 12) or `series` (every N-th series of the sorted
    /// series list, with all its candidates, as chapters 13–14 split: no
    /// validation scan is seen in training) [default: candidate].
    #[arg(long, value_name = "BY", value_parser = super::split_by_parser())]
    pub split_by: Option<SplitBy>,

    /// Training samples per epoch: the balanced epoch length, or a cap on an unbalanced one.
    #[arg(long, value_name = "N")]
    pub epoch_samples: Option<u64>,

    /// Validate on at most N samples (the first N of the validation split).
    #[arg(long, value_name = "N")]
    pub val_samples: Option<u64>,

    /// Seed for initialisation, shuffling and augmentation: the same seed on
    /// the CPU gives the same run. Random when not given (and printed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,

    /// Continue the run whose checkpoint directory (or a file in it) is CKPT,
    /// from the epoch after the saved one, with the saved settings, writing
    /// in that folder only (for a run's best/, in the run); only --cache,
    /// --epochs, --num-workers, --device, --threads and --profile may change.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,

    /// With --resume: go on although --cache is not the cache the run was
    /// trained on (its index differs from the one the checkpoint recorded).
    #[arg(long, requires = "resume")]
    pub allow_other_cache: bool,

    /// CPU threads libtorch may use (default: libtorch's choice).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,

    /// Print after each phase where its time went: loader wait, host→device
    /// copy and conversion, augmentation, forward, backward, optimizer,
    /// metric bookkeeping (on CUDA each part is synchronised, which costs
    /// some speed).
    #[arg(long)]
    pub profile: bool,

    /// What to classify: nodule (nodules against other candidates, chapters
    /// 11-12) or malignancy (malignant against benign nodules and
    /// non-nodules, chapter 14; needs --malignancy-csv). With --balanced a
    /// malignancy epoch is the book's: 1/2 malignant, 1/4 benign, 1/4
    /// non-nodules; validation scores the split's nodules only [default:
    /// nodule].
    #[arg(long, value_name = "L", value_parser = parse_from_str::<Label>, help_heading = "Malignancy (chapter 14)")]
    pub label: Option<Label>,

    /// The book's annotations_with_malignancy.csv (`prepcache synth` writes
    /// one): a positive candidate takes mal_bool of the nearest row of its
    /// series whose box (diameter/2 each way) holds it; positives in no box
    /// are left out, and counted.
    #[arg(long, value_name = "CSV", help_heading = "Malignancy (chapter 14)")]
    pub malignancy_csv: Option<PathBuf>,

    /// Start from this LunaModel's weights, all but the head's (fresh): a
    /// run folder (its best/ epoch when it has one), a model.safetensors or
    /// the book's .state file. Blocks outside --finetune-depth stay frozen
    /// (no gradient, BatchNorm statistics fixed), also when resumed.
    #[arg(long, value_name = "MODEL", help_heading = "Malignancy (chapter 14)")]
    pub finetune: Option<PathBuf>,

    /// With --finetune: how many parameterised blocks train, counted from
    /// the head (1: head_linear alone; 2: also block4 of the book's model)
    /// [default: 1].
    #[arg(long, value_name = "N", help_heading = "Malignancy (chapter 14)")]
    pub finetune_depth: Option<u32>,

    /// Initialise biases like the book's code actually does (normal with mean
    /// -1/sqrt(fan_out)) instead of the intended uniform(±1/sqrt(fan_out)).
    #[arg(long)]
    pub book_bias_init: bool,

    /// Model width: channel multiplier K (blocks have 8K, 16K, 32K, …
    /// channels) [default: 1].
    #[arg(long, value_name = "K", help_heading = "Model variants")]
    pub width: Option<i64>,

    /// Number of conv blocks (each halves the crop); the head's input size
    /// follows [default: 4].
    #[arg(long, value_name = "D", help_heading = "Model variants")]
    pub depth: Option<usize>,

    /// Dropout probability on the flattened features, before the head
    /// [default: 0].
    #[arg(long, value_name = "P", help_heading = "Model variants")]
    pub dropout: Option<f64>,

    /// BatchNorm3d after each conv inside the blocks (those convs then have
    /// no bias: the BatchNorm would cancel it).
    #[arg(long, help_heading = "Model variants")]
    pub block_batchnorm: bool,

    /// Residual blocks: a skip connection around each block's convs (1×1×1
    /// conv on the shortcut when the channel count changes).
    #[arg(long, help_heading = "Model variants")]
    pub residual: bool,

    /// Weight decay: L2 (grad += W·param) for sgd, adam and rmsprop,
    /// decoupled for adamw [default: 0].
    #[arg(long, value_name = "W", help_heading = "Optimizer")]
    pub weight_decay: Option<f64>,

    /// Arithmetic of the forward pass: fp32, bf16 (autocast; master weights
    /// stay fp32), fp16 (CUDA) or auto (bf16 where the CPU or GPU has it
    /// natively, else fp32) [default: auto].
    #[arg(long, value_name = "P", value_parser = compute::parse_precision, help_heading = "Compute")]
    pub precision: Option<Precision>,

    /// Activation layout: channels-last, contiguous or auto (channels-last
    /// on the CPU, contiguous on CUDA) [default: auto].
    #[arg(long, value_name = "F", value_parser = compute::parse_memory_format, help_heading = "Compute")]
    pub memory_format: Option<MemoryFormat>,

    /// Run name suffix (the book's `comment`) [default: dwlpt; `train seg`: seg].
    #[arg(value_name = "COMMENT")]
    pub comment: Option<String>,
}

/// A config enum from its TOML spelling (`adamw`, `f0.5`, …): one source
/// of names for the file and the flag.
fn parse_serde<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|e| e.to_string())
}

/// `--betas 0.9,0.999`: exactly two numbers.
fn parse_betas(text: &str) -> Result<[f64; 2], String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}")))
        .collect::<Result<_, _>>()?;
    <[f64; 2]>::try_from(values).map_err(|v| {
        format!(
            "two comma-separated values (B1,B2) expected, got {}",
            v.len()
        )
    })
}

fn parse_from_str<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| e.to_string())
}

fn set<T: Clone>(slot: &mut T, flag: &Option<T>) {
    if let Some(v) = flag {
        *slot = v.clone();
    }
}

fn set_some<T: Clone>(slot: &mut Option<T>, flag: &Option<T>) {
    if flag.is_some() {
        slot.clone_from(flag);
    }
}

impl TrainArgs {
    /// A new run's settings: defaults, then `--config`, then the flags;
    /// validated.
    pub fn to_config(&self) -> Result<RunConfig, ConfigError> {
        self.to_config_on(RunConfig::default())
    }

    /// [`TrainArgs::to_config`] with `base` in place of the defaults (a
    /// task's own preset, such as `train seg`'s).
    pub fn to_config_on(&self, base: RunConfig) -> Result<RunConfig, ConfigError> {
        let mut c = match &self.config {
            Some(path) => RunConfig::read_on(path, base)?,
            None => base,
        };
        self.apply_run_control(&mut c);
        self.apply_settings(&mut c);
        c.validate()?;
        Ok(c)
    }

    /// `--resume`: the saved settings, with only the options that say where
    /// and how fast to run taken from the flags; any other setting flag is
    /// an error rather than silently ignored.
    pub fn resume_config(&self, mut saved: RunConfig) -> Result<RunConfig, ConfigError> {
        let mut probe = RunConfig::default();
        self.apply_settings(&mut probe);
        if probe != RunConfig::default() || self.comment.is_some() {
            return Err(ConfigError::ResumeChangesSettings);
        }
        self.apply_run_control(&mut saved);
        saved.validate()?;
        Ok(saved)
    }

    fn apply_run_control(&self, c: &mut RunConfig) {
        set_some(&mut c.data.cache, &self.cache);
        set(&mut c.run.epochs, &self.epochs);
        set(&mut c.data.num_workers, &self.num_workers);
        set(&mut c.run.device, &self.device);
        set_some(&mut c.run.threads, &self.threads);
        c.run.profile |= self.profile;
    }

    fn apply_settings(&self, c: &mut RunConfig) {
        let d = &mut c.data;
        set(&mut d.batch_size, &self.batch_size);
        set_some(&mut d.balanced, &self.balanced);
        set(&mut d.val_stride, &self.val_stride);
        set(&mut d.split_by, &self.split_by);
        set_some(&mut d.epoch_samples, &self.epoch_samples);
        set_some(&mut d.val_samples, &self.val_samples);
        set(&mut d.sampler, &self.balanced_sampler);
        set_some(&mut d.balanced_schedule, &self.balanced_schedule);
        let a = &mut c.augment;
        a.enable_book(
            self.augmented,
            [
                self.augment_flip.is_some(),
                self.augment_offset.is_some(),
                self.augment_scale.is_some(),
                self.augment_rotate.is_some(),
                self.augment_noise.is_some(),
            ],
        );
        set(&mut a.flip_probability, &self.augment_flip);
        set(&mut a.offset, &self.augment_offset);
        set(&mut a.scale, &self.augment_scale);
        set(&mut a.rotate_degrees, &self.augment_rotate);
        set(&mut a.noise, &self.augment_noise);
        set(&mut a.mixup_alpha, &self.mixup);
        a.mixup_positives |= self.mixup_positives;
        let r = &mut c.run;
        set(&mut r.tb_prefix, &self.tb_prefix);
        set(&mut r.runs, &self.runs);
        set_some(&mut r.seed, &self.seed);
        set(&mut r.comment, &self.comment);
        set_some(&mut r.select, &self.select);
        set_some(&mut r.patience, &self.patience);
        set_some(&mut r.validate_every, &self.validate_every);
        set_some(&mut r.tb_histograms_every, &self.tb_histograms_every);
        r.tb_activations |= self.tb_activations;
        let o = &mut c.optimizer;
        set(&mut o.lr, &self.lr);
        set(&mut o.momentum, &self.momentum);
        set(&mut o.weight_decay, &self.weight_decay);
        set(&mut o.name, &self.optimizer);
        o.nesterov |= self.nesterov;
        set(&mut o.betas, &self.betas);
        set(&mut o.eps, &self.eps);
        set(&mut o.alpha, &self.rmsprop_alpha);
        set(&mut o.schedule, &self.lr_schedule);
        set(&mut o.step_epochs, &self.lr_step_epochs);
        set(&mut o.gamma, &self.lr_gamma);
        set(&mut o.warmup_samples, &self.warmup_samples);
        set_some(&mut o.schedule_epochs, &self.lr_schedule_epochs);
        if self.book_bias_init {
            c.init.bias = BiasInit::Book;
        }
        set(&mut c.data.label, &self.label);
        set_some(&mut c.data.malignancy_csv, &self.malignancy_csv);
        set_some(&mut c.init.finetune, &self.finetune);
        set_some(&mut c.init.finetune_depth, &self.finetune_depth);
        let m = &mut c.model;
        set(&mut m.width, &self.width);
        set(&mut m.depth, &self.depth);
        set(&mut m.dropout, &self.dropout);
        m.block_batchnorm |= self.block_batchnorm;
        m.residual |= self.residual;
        set(&mut m.input_norm, &self.input_norm);
        set(&mut m.input_offset, &self.input_offset);
        set(&mut m.input_scale, &self.input_scale);
        set(&mut c.compute.precision, &self.precision);
        set(&mut c.compute.memory_format, &self.memory_format);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    #[test]
    fn betas_are_two_numbers() {
        assert_eq!(parse_betas("0.9, 0.99"), Ok([0.9, 0.99]));
        assert!(parse_betas("0.9").unwrap_err().contains("got 1"));
        assert!(parse_betas("0.9,x").unwrap_err().contains("\"x\""));
        let args = Cli::try_parse_from(["train", "--betas", "0.8,0.95", "--optimizer", "adam"])
            .unwrap()
            .train;
        let c = args.to_config().unwrap();
        assert_eq!(c.optimizer.betas, [0.8, 0.95]);
        assert_eq!(c.optimizer.name, OptimizerKind::Adam);
    }
}
