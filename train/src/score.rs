//! Runs a saved model over cached candidates: what `train eval` and
//! `train predict` share. Weights come from `model.safetensors` alone, the
//! architecture from its metadata; the model runs in eval mode (BatchNorm
//! running averages, no dropout) without autograd.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use shared::cache::CacheReader;
use tch::nn::VarStore;
use tch::{Device, Kind, Reduction};

use crate::checkpoint;
use crate::cli::{ScoreArgs, Split};
use crate::fit::parse_device;
use crate::loader::{Loader, LoaderConfig};
use crate::metrics::{MetricRows, Samples};
use crate::model::{self, BiasInit, LunaModel, ModelConfig};
use crate::sampler;

/// A checkpoint's model, ready to score, with the cache it scores.
pub struct Scorer {
    pub reader: Arc<CacheReader>,
    pub architecture: ModelConfig,
    pub model_file: PathBuf,
    pub device: Device,
    model: LunaModel,
    // Owns the tensors `model` refers to.
    _vs: VarStore,
    loader_config: LoaderConfig,
}

/// Cache indices of `split`, in the cache's (canonical) order.
pub fn split_indices(len: usize, split: Split, val_stride: usize) -> Vec<u32> {
    match split {
        Split::All => (0..len as u32).collect(),
        Split::Train => sampler::split(len, val_stride).0,
        Split::Val => sampler::split(len, val_stride).1,
    }
}

impl Scorer {
    pub fn open(args: &ScoreArgs) -> Result<Self> {
        if let Some(n) = args.threads {
            tch::set_num_threads(n as i32);
        }
        let device = parse_device(&args.device)?;
        let reader = CacheReader::open(&args.cache)
            .with_context(|| format!("opening cache {}", args.cache.display()))?;
        let crop = reader.manifest().crop_shape;
        let expected: Vec<usize> = model::INPUT_SHAPE.iter().map(|&d| d as usize).collect();
        if crop[..] != expected[..] {
            bail!(
                "{}: crops are {crop:?}, LunaModel needs {expected:?}",
                args.cache.display()
            );
        }
        let model_file = checkpoint::model_file(&args.checkpoint);
        let architecture = checkpoint::read_architecture(&args.checkpoint)
            .with_context(|| format!("reading checkpoint {}", args.checkpoint.display()))?;
        architecture
            .validate(model::INPUT_SHAPE)
            .with_context(|| format!("{}: recorded architecture", model_file.display()))?;
        let mut vs = VarStore::new(device);
        // Every weight is overwritten by the checkpoint; the init scheme is moot.
        let model = LunaModel::with_config(&vs.root(), &architecture, BiasInit::Uniform);
        checkpoint::load_weights(&args.checkpoint, &mut vs)
            .with_context(|| format!("loading weights from {}", args.checkpoint.display()))?;
        Ok(Scorer {
            reader: Arc::new(reader),
            architecture,
            model_file,
            device,
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
            let (logits, probs) = self.model.forward(&x, false);
            let loss = logits.cross_entropy_loss::<tch::Tensor>(
                &batch.labels,
                None,
                Reduction::None,
                -100,
                0.0,
            );
            rows.push(&batch.labels, &probs.select(1, 1), &loss);
            Ok(())
        })?;
        Ok(rows.to_host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_partition_the_cache_in_order() {
        let all = split_indices(23, Split::All, 10);
        assert_eq!(all, (0..23).collect::<Vec<u32>>());
        let val = split_indices(23, Split::Val, 10);
        assert_eq!(val, vec![0, 10, 20]);
        let train = split_indices(23, Split::Train, 10);
        assert_eq!(train.len(), 20);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(train.iter().all(|i| !val.contains(i)));
    }
}
