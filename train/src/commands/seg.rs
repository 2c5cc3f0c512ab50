//! `train seg [FLAGS] [COMMENT]`: chapter 13's U-Net over a segmentation
//! cache written by `prepcache seg`, fresh or resumed, through the same
//! loop, checkpoints and records as the classifier. The book's recipe is
//! the preset the flags and `--config` change: Adam at 1e-3, batch 16,
//! 300,000 samples an epoch, augmentation flip, offset 0.03, scale 0.2,
//! rotate, noise 25 HU, validation at epoch 1, every 5th and the last.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use shared::cache::CacheReader;
use shared::seg::{CHUNK_PLANES, TRAIN_CHUNK_SHAPE, TRAIN_DIR, VAL_DIR};
use tch::Device;

use super::train::{drive, plan_on};
use crate::cli::TrainArgs;
use crate::config::resolve::settle;
use crate::config::{presets, RunConfig};
use crate::data::loader::{Loader, LoaderConfig};
use crate::model::UNetConfig;
use crate::run::{run_task, Epochs, SegSource, Segment, SliceImages, TaskRun, Trainer};

pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let plan = plan_on(args, presets::segmentation())?;
    drive(&plan, |plan, stop| {
        let (config, device) = settle(&plan.config)?;
        run_task(plan, assemble(&config, device)?, stop)
    })
}

/// Opens `<cache>/<sub>` and checks its chunks are segmentation chunks:
/// `fits` says whether their shape is the one this half holds.
fn open(root: &Path, sub: &str, fits: impl Fn([usize; 3]) -> bool) -> Result<Arc<CacheReader>> {
    let dir = root.join(sub);
    let reader = CacheReader::open(&dir).with_context(|| {
        format!(
            "opening {} (write a segmentation cache with `prepcache seg`)",
            dir.display()
        )
    })?;
    let shape = reader.manifest().crop_shape;
    if !fits(shape) {
        bail!(
            "{}: chunks are {shape:?}, not segmentation chunks ({CHUNK_PLANES} planes)",
            dir.display()
        );
    }
    Ok(Arc::new(reader))
}

/// The U-Net task over the cache, ready for [`run_task`].
fn assemble(config: &RunConfig, device: Device) -> Result<TaskRun<Segment>> {
    if !config.data.label.is_nodule() || config.init.finetune.is_some() {
        bail!("train seg: --label, --malignancy-csv and --finetune are the classifier's (`train`), not the U-Net's");
    }
    let root = config.data.cache.as_deref().context("no --cache given")?;
    let train = open(root, TRAIN_DIR, |shape| shape == TRAIN_CHUNK_SHAPE)?;
    let val = open(root, VAL_DIR, |shape| shape[0] == CHUNK_PLANES)?;
    if train.is_empty() {
        bail!(
            "{}: no training crops (no positive candidate in the training series)",
            root.join(TRAIN_DIR).display()
        );
    }
    // The book walks its positives round and round to fill an epoch.
    let samples = config
        .data
        .epoch_samples
        .map_or(train.len(), |n| n as usize);
    let crops: Vec<u32> = (0..samples).map(|k| (k % train.len()) as u32).collect();
    // It validates on the validation scans' slices with nodule pixels.
    let slices: Vec<u32> = (0..val.len() as u32)
        .filter(|&i| val.entries()[i as usize].is_nodule)
        .collect();
    let data_line = format!(
        "train seg: cache {} ({} training crops, {samples} samples/epoch; validating on {} of {} validation slices, those with nodule pixels)",
        root.display(),
        train.len(),
        slices.len(),
        val.len()
    );
    let epochs = Epochs::new(crops, slices, |_| true, config)
        .with_context(|| format!("sampling {}", root.display()))?;
    let trainer = Trainer::with_task(config, device, epochs.samples_per_epoch(), |root| {
        Segment::new(root, &UNetConfig::default(), config.augment, config.compute)
            .with_images(SliceImages::new(Arc::clone(&val)))
    });
    let loader = |reader: &Arc<CacheReader>| {
        let cfg = LoaderConfig {
            batch_size: config.data.batch_size as usize,
            num_workers: config.data.num_workers as usize,
            device,
        };
        Loader::new(Arc::clone(reader), cfg)
    };
    Ok(TaskRun {
        config: config.clone(),
        epochs,
        source: SegSource::new(loader(&train), loader(&val)),
        trainer,
        fingerprint: train.manifest().fingerprint.clone(),
        data_line,
        probe: None,
    })
}
