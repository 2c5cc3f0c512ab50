//! Inference: a saved model run over cached candidates, what `train eval`
//! and `train predict` share. Weights come from `model.safetensors` alone, the
//! architecture from its metadata; the model runs in eval mode (BatchNorm
//! running averages, no dropout) without autograd. The device, the compute
//! mode and the opened cache come [`Resolved`], as training's do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use shared::cache::CacheReader;
use tch::nn::VarStore;
use tch::{Device, Kind};

use crate::config::resolve::Resolved;
use crate::config::{ComputeConfig, Label};
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::split::{Split, SplitRule};
use crate::evaluate::{MetricRows, Samples};
use crate::model::{self, forward_batch_with, prepare_weights, BiasInit, LunaModel, ModelConfig};
use crate::run::checkpoint::{self, ModelFileInfo};
use crate::run::driver::short;

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
    /// Opens the model of `checkpoint` for `tool` (`eval`, `predict`) on
    /// the resolved data and platform, and says what it is about to run;
    /// returns the split's cache indices.
    pub fn open_on(
        checkpoint: &Path,
        resolved: Resolved,
        split: Split,
        tool: &str,
    ) -> Result<(Self, Vec<u32>)> {
        let rule = resolved.config.data.split_rule();
        let cache = resolved.config.data.cache.clone().unwrap_or_default();
        let model = SavedModel::open(checkpoint, resolved)?;
        let order = split.of(&model.reader, rule);
        println!(
            "{tool}: {} on {} {} candidates of {} (device {:?}, {})",
            model.model_file.display(),
            order.len(),
            split.log_name(),
            cache.display(),
            model.device,
            model.compute.describe()
        );
        model.note_provenance(tool, &cache);
        if split != Split::All {
            model.note_split(tool, rule);
        }
        Ok((model, order))
    }

    /// Says when the run was trained with another split than the one asked
    /// for: its training candidates may then be among these.
    fn note_split(&self, tool: &str, rule: SplitRule) {
        let Ok(state) = checkpoint::read_state(&self.checkpoint_dir()) else {
            return;
        };
        let trained = state.config.data.split_rule();
        if trained != rule {
            println!(
                "{tool}: note: the run was trained with --split-by {} --val-stride {}; this is --split-by {} --val-stride {}, so its split is not the run's",
                trained.by, trained.val_stride, rule.by, rule.val_stride
            );
        }
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
    fn note_provenance(&self, tool: &str, cache_dir: &Path) {
        let file = self.model_file.display();
        if let Ok(Some(Label::Malignancy)) = checkpoint::read_label(&self.model_file) {
            println!("{tool}: note: {file} classifies malignancy (chapter 14); {tool} scores its P(malignant) against the cache's nodule labels, so the figures below are no malignancy scores (the run's own are in its metrics.jsonl)");
        }
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
                cache_dir.display(),
                short(cache)
            );
        }
    }

    /// The model of `ckpt` (a checkpoint folder or its model file), on the
    /// device and cache `resolved` decided.
    pub fn open(ckpt: &Path, resolved: Resolved) -> Result<Self> {
        let Resolved {
            config,
            device,
            reader,
        } = resolved;
        let compute = config.compute;
        let model_file = checkpoint::model_file(ckpt);
        let architecture = checkpoint::read_architecture(ckpt)
            .with_context(|| format!("reading checkpoint {}", ckpt.display()))?;
        architecture
            .validate(model::INPUT_SHAPE)
            .with_context(|| format!("{}: recorded architecture", model_file.display()))?;
        let mut vs = VarStore::new(device);
        // Every weight is overwritten by the checkpoint; the init scheme is moot.
        let model = LunaModel::with_config(&vs.root(), &architecture, BiasInit::Uniform);
        let weights = checkpoint::load_weights(ckpt, &mut vs)
            .with_context(|| format!("loading weights from {}", ckpt.display()))?;
        prepare_weights(&vs, compute);
        Ok(SavedModel {
            reader,
            architecture,
            model_file,
            weights,
            device,
            compute,
            model,
            _vs: vs,
            loader_config: LoaderConfig {
                batch_size: config.data.batch_size as usize,
                num_workers: config.data.num_workers as usize,
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
