//! What each kind of run starts from before flags and files change it:
//! the classifier's chapter 12 settings ([`RunConfig::default`]) or the
//! segmentation model's chapter 13 recipe.

use super::{OptimizerKind, RunConfig};
use crate::data::augment::AugmentConfig;

/// The book's segmentation epoch (`TrainingLuna2dSegmentationDataset`).
pub const BOOK_SEG_EPOCH_SAMPLES: u64 = 300_000;

/// `train seg`'s defaults: Adam at 1e-3, batch 16, 300,000 samples an
/// epoch, augmentation flip, offset 0.03, scale 0.2, rotate, noise 25 HU,
/// validation at epoch 1, every 5th and the last.
pub fn segmentation() -> RunConfig {
    let mut c = RunConfig::default();
    c.run.tb_prefix = "p2ch13".to_owned();
    c.run.comment = "seg".to_owned();
    c.data.batch_size = 16;
    c.data.epoch_samples = Some(BOOK_SEG_EPOCH_SAMPLES);
    c.optimizer.name = OptimizerKind::Adam;
    c.optimizer.lr = 1e-3;
    c.augment = AugmentConfig {
        offset: 0.03,
        ..AugmentConfig::book()
    };
    // The book's `validation_cadence`: full slices are slow to score.
    c.run.validate_every = Some(5);
    c
}
