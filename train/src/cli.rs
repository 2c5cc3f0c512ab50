//! The `train` command line (the book's flags, plus run control).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::model::ModelConfig;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (libtorch ",
    env!("LIBTORCH_VERSION"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "train",
    version,
    long_version = LONG_VERSION,
    about = "Train the LunaModel nodule-candidate classifier from a prepcache cache",
    long_about = "Train the LunaModel nodule-candidate classifier (Deep Learning with PyTorch, \
chapters 11-12) from a cache written by `prepcache build`.\n\nEach epoch trains on the \
training split, then evaluates on the validation split (every --val-stride-th candidate), \
prints a metrics table, appends it to metrics.jsonl, writes TensorBoard events and \
saves a checkpoint.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the libtorch version, CUDA/cuDNN availability and the devices seen.
    Doctor,
    /// Measure how fast the loader fills batch buffers (no model), for 1..N
    /// workers, against single-thread decompression × workers.
    BenchLoader(BenchLoaderArgs),
    /// Time LunaModel training steps (forward + backward + SGD) on random
    /// input, per batch size: the figure to compare with PyTorch's step.
    BenchStep(BenchStepArgs),
    /// Score a checkpoint on a split of the cache: metrics table, ROC AUC,
    /// average precision, LUNA16 FROC/CPM; writes eval.json and PNG plots.
    Eval(EvalArgs),
    /// Write LUNA16 submission rows (seriesuid,coordX,coordY,coordZ,probability)
    /// for every candidate of a split; labels are not used.
    Predict(PredictArgs),
}

/// Which cached candidates to score.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Every --val-stride-th candidate, as training validates.
    Val,
    /// The candidates training learns from.
    Train,
    /// Every candidate.
    All,
}

/// Options shared by `eval` and `predict`: the model, the data and where to run.
#[derive(Args, Debug, Clone)]
pub struct ScoreArgs {
    /// Cache directory written by `prepcache build`.
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// A run's checkpoint directory (`…-cls-…`) or its model.safetensors.
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: PathBuf,
    /// Every N-th candidate (of the book-ordered list) is in the validation split.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    pub val_stride: u32,
    /// Samples per forward pass.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Threads decoding cached crops.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub num_workers: u32,
    /// Where to run: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: String,
    /// CPU threads libtorch may use (default: libtorch's choice).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Candidates to evaluate.
    #[arg(long, value_enum, default_value_t = Split::Val)]
    pub split: Split,
    /// Folder for eval.json and the plots (default: the checkpoint's folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Candidates to score (a test-set cache: all).
    #[arg(long, value_enum, default_value_t = Split::All)]
    pub split: Split,
    /// The CSV to write (atomically).
    #[arg(long, value_name = "CSV")]
    pub out: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct BenchStepArgs {
    /// Comma-separated batch sizes.
    #[arg(
        long,
        default_value = "32,128",
        value_delimiter = ',',
        value_name = "N,..."
    )]
    pub batch_sizes: Vec<usize>,
    /// Timed steps per batch size.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub steps: usize,
    /// Untimed steps first (allocator and kernel warm-up).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub warmup: usize,
    /// CPU threads libtorch may use (default: libtorch's choice).
    #[arg(long, value_name = "N")]
    pub threads: Option<i32>,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Args, Debug, Clone)]
pub struct BenchLoaderArgs {
    /// Cache directory written by `prepcache build`.
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// Measure with 1, 2, … up to N worker threads.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub num_workers: u32,
    /// Samples per batch buffer.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Balanced order with RATIO negatives per positive (1 if no value), as training reads it.
    #[arg(long, value_name = "RATIO", num_args = 0..=1, default_missing_value = "1")]
    pub balanced: Option<u32>,
    /// Samples to load per configuration.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub samples: usize,
    /// Where batches go: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Cache directory written by `prepcache build` (with --resume: the
    /// run's own cache unless given).
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub cache: Option<PathBuf>,

    /// Number of epochs to train for (a resumed run counts the epochs already done).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub epochs: usize,

    /// Samples per training step.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Threads decoding cached crops ahead of the training step.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub num_workers: u32,

    /// Balance the training data: RATIO negatives per positive (1 if no value).
    /// Balanced epochs have 200,000 samples unless --epoch-samples says otherwise.
    /// (A COMMENT right after a bare --balanced would be read as the ratio:
    /// put it first or write --balanced=1.)
    #[arg(long, value_name = "RATIO", num_args = 0..=1, default_missing_value = "1",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub balanced: Option<u32>,

    /// All five augmentations with the book's magnitudes.
    #[arg(long)]
    pub augmented: bool,
    /// Augment by random mirroring along each axis.
    #[arg(long)]
    pub augment_flip: bool,
    /// Augment by random shifts of up to 0.1 of the half-extent per axis.
    #[arg(long)]
    pub augment_offset: bool,
    /// Augment by random scaling of up to ±20% per axis.
    #[arg(long)]
    pub augment_scale: bool,
    /// Augment by a random in-slice rotation.
    #[arg(long)]
    pub augment_rotate: bool,
    /// Augment by adding Gaussian noise of 25 HU standard deviation.
    #[arg(long)]
    pub augment_noise: bool,

    /// TensorBoard run group: runs go to RUNS/<TB_PREFIX>/.
    #[arg(long, default_value = "p2ch12", value_name = "P")]
    pub tb_prefix: String,

    /// Root folder for run directories (TensorBoard events, metrics, checkpoints).
    #[arg(long, default_value = "runs", value_name = "DIR")]
    pub runs: PathBuf,

    /// Where to train: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: String,

    /// SGD learning rate.
    #[arg(long, default_value_t = 0.001, value_name = "LR")]
    pub lr: f64,

    /// SGD momentum.
    #[arg(long, default_value_t = 0.99, value_name = "M")]
    pub momentum: f64,

    /// Every N-th candidate (of the book-ordered list) goes to validation.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    pub val_stride: u32,

    /// Training samples per epoch: the balanced epoch length, or a cap on an unbalanced one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub epoch_samples: Option<u64>,

    /// Validate on at most N samples (the first N of the validation split).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub val_samples: Option<u64>,

    /// Seed for initialisation, shuffling and augmentation: the same seed on
    /// the CPU gives the same run. Random when not given (and printed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,

    /// Continue the run whose checkpoint directory (or a file in it) is CKPT,
    /// from the epoch after the saved one, with the saved settings.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,

    /// CPU threads libtorch may use (default: libtorch's choice).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// Initialise biases like the book's code actually does (normal with mean
    /// -1/sqrt(fan_out)) instead of the intended uniform(±1/sqrt(fan_out)).
    #[arg(long)]
    pub book_bias_init: bool,

    /// Model width: channel multiplier K (blocks have 8K, 16K, 32K, … channels).
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(i64).range(1..),
          help_heading = "Model variants")]
    #[serde(default = "default_width")]
    pub width: i64,

    /// Number of conv blocks (each halves the crop); the head's input size follows.
    #[arg(
        long,
        default_value_t = 4,
        value_name = "D",
        help_heading = "Model variants"
    )]
    #[serde(default = "default_depth")]
    pub depth: usize,

    /// Dropout probability on the flattened features, before the head.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "P",
        help_heading = "Model variants"
    )]
    #[serde(default)]
    pub dropout: f64,

    /// BatchNorm3d after each conv inside the blocks (those convs then have
    /// no bias: the BatchNorm would cancel it).
    #[arg(long, help_heading = "Model variants")]
    #[serde(default)]
    pub block_batchnorm: bool,

    /// Residual blocks: a skip connection around each block's convs (1×1×1
    /// conv on the shortcut when the channel count changes).
    #[arg(long, help_heading = "Model variants")]
    #[serde(default)]
    pub residual: bool,

    /// L2 weight decay in the SGD step (PyTorch semantics: grad += W·param).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "W",
        help_heading = "Model variants"
    )]
    #[serde(default)]
    pub weight_decay: f64,

    /// Run name suffix (the book's `comment`).
    #[arg(default_value = "dwlpt", value_name = "COMMENT")]
    pub comment: String,
}

// Runs saved before the model variants existed used the book's model.
fn default_width() -> i64 {
    ModelConfig::default().width
}

fn default_depth() -> usize {
    ModelConfig::default().depth
}

impl TrainArgs {
    /// The architecture these flags choose.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            width: self.width,
            depth: self.depth,
            dropout: self.dropout,
            block_batchnorm: self.block_batchnorm,
            residual: self.residual,
        }
    }
}
