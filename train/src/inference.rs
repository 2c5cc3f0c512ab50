//! Inference: a saved model run over cached candidates, what `train eval`
//! and `train predict` share. Weights come from `model.safetensors` alone, the
//! architecture from its metadata; the model runs in eval mode (BatchNorm
//! running averages, no dropout) without autograd.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use shared::cache::CacheReader;
use tch::nn::VarStore;
use tch::{Device, Kind};

use crate::config::resolve::Platform;
use crate::config::ComputeConfig;
use crate::data::cache::open_cache;
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::split::Split;
use crate::evaluate::{MetricRows, Samples};
use crate::model::{self, forward_batch_with, prepare_weights, BiasInit, LunaModel, ModelConfig};
use crate::run::checkpoint::{self, ModelFileInfo};
use crate::run::driver::short;

/// What `eval` and `predict` score with: the model and the data (where it
/// runs is a [`Platform`], decided before).
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    /// Cache directory written by `prepcache build`.
    pub cache: PathBuf,
    /// A run's checkpoint directory or its model.safetensors.
    pub checkpoint: PathBuf,
    /// Every N-th candidate of the canonical list is validation.
    pub val_stride: u32,
    pub batch_size: u32,
    pub num_workers: u32,
}

/// A checkpoint's model, ready to run, with the cache it runs on.
pub struct SavedModel {
    pub reader: Arc<CacheReader>,
    pub architecture: ModelConfig,
    pub model_file: PathBuf,
    /// Whether the weights were checksummed, and the cache they were
    /// trained on.
    pub weights: ModelFileInfo,
    pub device: Device,
    /// The resolved precision and memory format.
    pub compute: ComputeConfig,
    model: LunaModel,
    // Owns the tensors `model` refers to.
    _vs: VarStore,
    loader_config: LoaderConfig,
}

impl SavedModel {
    /// Opens the model and the cache for `tool` (`eval`, `predict`) and
    /// says what it is about to run; returns the split's cache indices.
    pub fn open_on(
        args: &ScoreOptions,
        platform: Platform,
        split: Split,
        tool: &str,
    ) -> Result<(Self, Vec<u32>)> {
        let model = SavedModel::open(args, platform)?;
        let order = split.indices(model.reader.len(), args.val_stride as usize);
        println!(
            "{tool}: {} on {} {} candidates of {} (device {:?}, {})",
            model.model_file.display(),
            order.len(),
            split.log_name(),
            args.cache.display(),
            model.device,
            model.compute.describe()
        );
        model.note_provenance(tool, args);
        Ok((model, order))
    }

    /// The checkpoint folder the weights came from (where `eval` reports).
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.model_file
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// Says when the weights could not be verified, or were trained on
    /// another cache than the one they are about to score.
    fn note_provenance(&self, tool: &str, args: &ScoreOptions) {
        let file = self.model_file.display();
        if !self.weights.checksummed {
            println!("{tool}: note: {file} carries no tensor checksums (an older train or a PyTorch export): loaded unverified");
        }
        let cache = &self.reader.manifest().fingerprint;
        if let Some(trained) = self
            .weights
            .cache_fingerprint
            .as_ref()
            .filter(|f| *f != cache)
        {
            println!(
                "{tool}: note: {file} was trained on another cache (index {}…) than {} (index {}…): its own training candidates may be among these",
                short(trained),
                args.cache.display(),
                short(cache)
            );
        }
    }

    pub fn open(args: &ScoreOptions, platform: Platform) -> Result<Self> {
        let Platform { device, compute } = platform;
        let reader = open_cache(&args.cache)?;
        let model_file = checkpoint::model_file(&args.checkpoint);
        let architecture = checkpoint::read_architecture(&args.checkpoint)
            .with_context(|| format!("reading checkpoint {}", args.checkpoint.display()))?;
        architecture
            .validate(model::INPUT_SHAPE)
            .with_context(|| format!("{}: recorded architecture", model_file.display()))?;
        let mut vs = VarStore::new(device);
        // Every weight is overwritten by the checkpoint; the init scheme is moot.
        let model = LunaModel::with_config(&vs.root(), &architecture, BiasInit::Uniform);
        let weights = checkpoint::load_weights(&args.checkpoint, &mut vs)
            .with_context(|| format!("loading weights from {}", args.checkpoint.display()))?;
        prepare_weights(&vs, compute);
        Ok(SavedModel {
            reader: Arc::new(reader),
            architecture,
            model_file,
            weights,
            device,
            compute,
            model,
            _vs: vs,
            loader_config: LoaderConfig {
                batch_size: args.batch_size as usize,
                num_workers: args.num_workers as usize,
                device,
            },
        })
    }

    /// Per-candidate label, P(nodule) and loss for the cache indices `order`,
    /// in that order. P(nodule) does not depend on the labels.
    pub fn score(&self, order: &[u32]) -> Result<Samples> {
        let mut loader = Loader::new(Arc::clone(&self.reader), self.loader_config);
        let mut rows = MetricRows::new(order.len(), self.device);
        let _no_grad = tch::no_grad_guard();
        loader.run_epoch::<anyhow::Error>(order, |batch| {
            let x = batch.images.to_kind(Kind::Float);
            let out = forward_batch_with(&self.model, x, &batch.labels, false, self.compute);
            rows.push(&batch.labels, &out.prob_pos, &out.loss);
            Ok(())
        })?;
        Ok(rows.to_host())
    }
}
