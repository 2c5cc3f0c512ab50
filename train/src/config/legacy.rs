//! Checkpoints written before [`RunConfig`] existed stored the raw
//! command-line flags (`run_state.args`, untyped JSON); this turns them into
//! the configuration they meant, so old runs still load and resume.

use serde::Deserialize;

use super::{ConfigError, RunConfig};
use crate::model::BiasInit;

/// The flags as those versions serialised them. Keys added over time have
/// defaults, as the runs that lacked them used the book's model.
#[derive(Deserialize)]
struct LegacyArgs {
    cache: Option<std::path::PathBuf>,
    epochs: usize,
    batch_size: u32,
    num_workers: u32,
    balanced: Option<u32>,
    augmented: bool,
    augment_flip: bool,
    augment_offset: bool,
    augment_scale: bool,
    augment_rotate: bool,
    augment_noise: bool,
    tb_prefix: String,
    runs: std::path::PathBuf,
    device: String,
    lr: f64,
    momentum: f64,
    val_stride: u32,
    epoch_samples: Option<u64>,
    val_samples: Option<u64>,
    seed: Option<u64>,
    threads: Option<u32>,
    book_bias_init: bool,
    #[serde(default = "book_width")]
    width: i64,
    #[serde(default = "book_depth")]
    depth: usize,
    #[serde(default)]
    dropout: f64,
    #[serde(default)]
    block_batchnorm: bool,
    #[serde(default)]
    residual: bool,
    #[serde(default)]
    weight_decay: f64,
    comment: String,
}

fn book_width() -> i64 {
    crate::model::ModelConfig::default().width
}

fn book_depth() -> usize {
    crate::model::ModelConfig::default().depth
}

/// The configuration an old checkpoint's `args` describe.
pub fn from_args(args: &serde_json::Value) -> Result<RunConfig, ConfigError> {
    let a = LegacyArgs::deserialize(args).map_err(|e| ConfigError::File {
        path: "run_state.args".into(),
        reason: format!("settings of an older checkpoint do not parse: {e}"),
    })?;
    let mut c = RunConfig::default();
    c.data.cache = a.cache;
    c.data.val_stride = a.val_stride;
    c.data.batch_size = a.batch_size;
    c.data.num_workers = a.num_workers;
    c.data.balanced = a.balanced;
    c.data.epoch_samples = a.epoch_samples;
    c.data.val_samples = a.val_samples;
    c.model.width = a.width;
    c.model.depth = a.depth;
    c.model.dropout = a.dropout;
    c.model.block_batchnorm = a.block_batchnorm;
    c.model.residual = a.residual;
    if a.book_bias_init {
        c.init.bias = BiasInit::Book;
    }
    c.optimizer.lr = a.lr;
    c.optimizer.momentum = a.momentum;
    c.optimizer.weight_decay = a.weight_decay;
    c.augment.enable_book(
        a.augmented,
        [
            a.augment_flip,
            a.augment_offset,
            a.augment_scale,
            a.augment_rotate,
            a.augment_noise,
        ],
    );
    c.compute = super::ComputeConfig::fp32_contiguous();
    c.run.epochs = a.epochs;
    c.run.seed = a.seed;
    c.run.device = a.device;
    c.run.threads = a.threads;
    c.run.runs = a.runs;
    c.run.tb_prefix = a.tb_prefix;
    c.run.comment = a.comment;
    Ok(c)
}
