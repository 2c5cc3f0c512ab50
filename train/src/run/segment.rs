//! The second task: chapter 13's U-Net marking nodule pixels, over a
//! segmentation cache (`shared::seg`: chunks of 7 HU slices and the centre
//! slice's mask). Training reads `seg-train/` (96×96 crops around the
//! positives, of which each step takes a random 64×64 window) and
//! validates on `seg-val/` (whole slices of the validation series).

use std::time::Duration;

use anyhow::Result;
use shared::seg::{HU_PLANES, MASK_PLANE};
use tch::nn::Path;
use tch::{Device, Kind, Tensor};

use super::checkpoint::Architecture;
use super::phase::PhaseKind;
use super::profile::{Laps, Part};
use super::run_dir::RunKind;
use super::slice_images::SliceImages;
use super::task::{BatchSource, PhaseSummary, Step, Task};
use super::tensorboard::Png;
use crate::data::augment::AugmentConfig;
use crate::data::loader::{Batch, Loader};
use crate::evaluate::pixels::PixelRows;
use crate::model::compute::ComputeConfig;
use crate::model::forward::segment_with;
use crate::model::seg_loss::segmentation_loss;
use crate::model::{UNet, UNetConfig};

/// The book's training window inside each 96×96 training crop.
pub const TRAIN_WINDOW: i64 = 64;

pub struct Segment {
    model: UNet,
    augment: AugmentConfig,
    compute: ComputeConfig,
    images: Option<SliceImages>,
}

/// A step's results the phase keeps: Dice loss per sample, P per pixel
/// and the mask.
pub struct SegOutput {
    dice: Tensor,
    prediction: Tensor,
    mask: Tensor,
}

impl Segment {
    pub fn new(
        root: &Path,
        config: &UNetConfig,
        augment: AugmentConfig,
        compute: ComputeConfig,
    ) -> Self {
        Segment {
            model: UNet::new(root, config),
            augment,
            compute,
            images: None,
        }
    }

    /// Draws `images` into TensorBoard after each validation.
    pub fn with_images(self, images: SliceImages) -> Self {
        Segment {
            images: Some(images),
            ..self
        }
    }
}

/// Float `[n, 8, H, W]` chunks → (HU slices `[n, 7, H, W]`, mask `[n, 1, H, W]`).
fn planes(chunks: &Tensor) -> (Tensor, Tensor) {
    let hu = chunks.narrow(1, 0, HU_PLANES as i64);
    let mask = chunks.narrow(1, MASK_PLANE as i64, 1).gt(0.5);
    (hu, mask)
}

/// A random `TRAIN_WINDOW`² window of each sample (the book's
/// `random.randrange(0, 32)` per axis), drawn from libtorch's generator.
fn random_windows(chunks: &Tensor) -> Tensor {
    let size = chunks.size();
    let (n, h, w) = (size[0], size[2], size[3]);
    let slack = |extent: i64| (extent - TRAIN_WINDOW).max(0);
    let offsets = Tensor::rand([n, 2], (Kind::Double, Device::Cpu));
    let offsets = Vec::<f64>::try_from(offsets.flatten(0, -1)).unwrap_or_default();
    let windows: Vec<Tensor> = (0..n)
        .map(|k| {
            let at = |axis: usize, extent: i64| {
                let u = offsets.get(2 * k as usize + axis).copied().unwrap_or(0.0);
                ((u * slack(extent) as f64) as i64).min(slack(extent))
            };
            chunks
                .get(k)
                .narrow(1, at(0, h), TRAIN_WINDOW.min(h))
                .narrow(2, at(1, w), TRAIN_WINDOW.min(w))
        })
        .collect();
    Tensor::stack(&windows, 0)
}

impl Task for Segment {
    type Source = SegSource;
    type Output = SegOutput;
    type Rows = PixelRows;

    fn step(&self, batch: &Batch<'_>, train: bool, laps: &mut Laps) -> Step<SegOutput> {
        // Loader slots are [n, 1, planes, H, W] int16.
        let chunks = batch.images.to_kind(Kind::Float).squeeze_dim(1);
        laps.lap(Part::Input);
        let (hu, mask) = if train {
            let (hu, mask) = planes(&random_windows(&chunks));
            let augmented = self.augment.apply_planar(&hu, &mask);
            laps.lap(Part::Augment);
            augmented
        } else {
            planes(&chunks)
        };
        let prediction = segment_with(&self.model, hu, train, self.compute);
        let loss = segmentation_loss(&prediction, &mask);
        Step {
            loss: loss.total,
            output: SegOutput {
                dice: loss.dice,
                prediction,
                mask,
            },
        }
    }

    fn rows(&self, samples: usize, device: Device) -> PixelRows {
        PixelRows::new(samples, device)
    }

    fn push(&self, rows: &mut PixelRows, _batch: &Batch<'_>, out: &SegOutput) {
        rows.push(&out.dice, &out.prediction, &out.mask);
    }

    fn summarize(&self, rows: &PixelRows, _kind: PhaseKind) -> PhaseSummary {
        PhaseSummary {
            metrics: rows.metrics(),
            auc: None,
            samples: None,
        }
    }

    fn describe(&self) -> String {
        "UNet".to_owned()
    }

    fn run_kind(&self) -> RunKind {
        RunKind::Segment
    }

    fn validation_images(&self, epoch: usize) -> Result<Vec<(String, Png)>> {
        match &self.images {
            Some(images) => images.draw(
                &|hu| segment_with(&self.model, hu.shallow_clone(), false, self.compute),
                self.model.device(),
                epoch == 1,
            ),
            None => Ok(Vec::new()),
        }
    }

    fn architecture(&self) -> Option<Architecture> {
        Architecture::unet(self.model.config()).ok()
    }
}

/// The segmentation cache's two halves: training crops and validation
/// slices, each through its own loader.
pub struct SegSource {
    train: Loader,
    val: Loader,
    waited: Duration,
}

impl SegSource {
    pub fn new(train: Loader, val: Loader) -> Self {
        SegSource {
            train,
            val,
            waited: Duration::ZERO,
        }
    }
}

impl BatchSource for SegSource {
    type Batch<'a> = Batch<'a>;

    fn run_epoch(
        &mut self,
        kind: PhaseKind,
        order: &[u32],
        consume: &mut dyn FnMut(Batch<'_>) -> Result<()>,
    ) -> Result<()> {
        let loader = match kind {
            PhaseKind::Train => &mut self.train,
            PhaseKind::Validate => &mut self.val,
        };
        let result = BatchSource::run_epoch(loader, kind, order, consume);
        self.waited = BatchSource::last_wait(loader);
        result
    }

    fn last_wait(&self) -> Duration {
        self.waited
    }
}
