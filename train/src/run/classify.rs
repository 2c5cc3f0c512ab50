//! The first task: LunaModel telling nodules from other candidates, over
//! the cache's crops (chapters 11–12).

use tch::nn::Path;
use tch::{Device, Kind, Tensor};

use super::phase::PhaseKind;
use super::profile::{Laps, Part};
use super::task::{PhaseSummary, Step, Task};
use crate::config::RunConfig;
use crate::data::augment::AugmentConfig;
use crate::data::loader::{Batch, Loader};
use crate::data::mixup::mixup;
use crate::evaluate::{roc_auc, EpochMetrics, MetricRows};
use crate::model::compute::ComputeConfig;
use crate::model::{forward_batch_with, BatchOutput, LunaModel, Target};

pub struct Classify {
    model: LunaModel,
    /// "LunaModel", with the variant unless it is the book's.
    name: String,
    augment: AugmentConfig,
    compute: ComputeConfig,
}

impl Classify {
    /// LunaModel as `config` describes it, its weights under `root`; when
    /// fine-tuning, all but its last `finetune_depth` blocks frozen (the
    /// weights themselves are loaded later, by [`super::finetune`]).
    pub fn new(root: &Path, config: &RunConfig) -> Result<Self, tch::TchError> {
        let mut model = LunaModel::with_config(root, &config.model, config.init.bias);
        if config.init.finetune.is_some() {
            model.freeze_all_but_last(config.init.finetune_depth())?;
        }
        Ok(Classify {
            model,
            name: if config.model.is_book() {
                "LunaModel".to_owned()
            } else {
                format!("LunaModel {:?}", config.model)
            },
            augment: config.augment,
            compute: config.compute,
        })
    }

    /// The batch as float HU, augmented (on the CPU the warp reads the
    /// int16 batch itself), then mixed when asked: the images and the soft
    /// targets mixup made.
    fn augmented(&self, images: &Tensor, labels: &Tensor) -> (Tensor, Option<Tensor>) {
        let x = if self.augment.is_off() {
            images.to_kind(Kind::Float)
        } else {
            self.augment.apply(images)
        };
        let a = &self.augment;
        if a.mixup_alpha > 0.0 {
            let m = mixup(&x, labels, a.mixup_alpha, a.mixup_positives);
            return (m.images, Some(m.targets));
        }
        (x, None)
    }
}

impl Task for Classify {
    type Source = Loader;
    type Output = BatchOutput;
    type Rows = MetricRows;

    fn step(&self, batch: &Batch<'_>, train: bool, laps: &mut Laps) -> Step<BatchOutput> {
        // On the CPU the loader's copy is done; on CUDA this waits for it.
        laps.lap(Part::Input);
        let output = if train {
            let (x, soft) = self.augmented(&batch.images, &batch.labels);
            laps.lap(Part::Augment);
            let target = match &soft {
                Some(p) => Target::Soft(p),
                None => Target::Class(&batch.labels),
            };
            forward_batch_with(&self.model, x, target, true, self.compute)
        } else {
            let x = batch.images.to_kind(Kind::Float);
            laps.lap(Part::Input);
            forward_batch_with(&self.model, x, &batch.labels, false, self.compute)
        };
        Step {
            loss: output.loss.mean(Kind::Float),
            output,
        }
    }

    fn rows(&self, samples: usize, device: Device) -> MetricRows {
        MetricRows::new(samples, device)
    }

    fn push(&self, rows: &mut MetricRows, batch: &Batch<'_>, out: &BatchOutput) {
        rows.push(&batch.labels, &out.prob_pos, &out.loss);
    }

    fn summarize(&self, rows: &MetricRows, kind: PhaseKind) -> PhaseSummary {
        let samples = rows.to_host();
        PhaseSummary {
            metrics: EpochMetrics::compute(&samples),
            auc: (kind == PhaseKind::Validate).then(|| roc_auc(&samples.prob_pos, &samples.labels)),
            samples: Some(samples),
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn block_outputs(&self, x: &Tensor) -> Vec<Tensor> {
        self.model.forward_blocks(x)
    }
}
