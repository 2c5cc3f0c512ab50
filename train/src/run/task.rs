//! The seam between the training loop and a model: what a task (LunaModel
//! classification today, segmentation next) provides so that the trainer,
//! the phase driver, the recorder and the checkpoints run it unchanged.
//!
//! A task owns its model and its forward-and-loss step; a [`BatchSource`]
//! hands it batches; the phase keeps the task's [`Task::Rows`] on the
//! device and asks the task, once at the end, for a [`PhaseSummary`]: the
//! one metrics record every task reports.

use std::time::Duration;

use anyhow::Result;
use tch::{Device, Tensor};

use super::checkpoint::Architecture;
use super::phase::PhaseKind;
use super::profile::Laps;
use super::run_dir::RunKind;
use super::tensorboard::Png;
use crate::evaluate::{EpochMetrics, Samples};

/// Where a batch sits in its epoch: the phase seeds, counts and reports by it.
pub trait Located {
    /// Position of the batch in the epoch.
    fn index(&self) -> usize;
    /// Index of the batch's first sample in the epoch.
    fn start(&self) -> usize;
    /// Samples in the batch.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Batches of a task's samples, in the order asked for.
/// `'static`: a source owns its buffers, so a batch may borrow any of them.
pub trait BatchSource: 'static {
    /// A batch, valid for the consumer's call (it may borrow a reusable buffer).
    type Batch<'a>: Located;

    /// Loads `order` (indices into the `kind` phase's samples: a task may
    /// train and validate on different data) in batches and calls `consume`
    /// on each, in order; stops at the first error, the source's or
    /// `consume`'s.
    fn run_epoch(
        &mut self,
        kind: PhaseKind,
        order: &[u32],
        consume: &mut dyn FnMut(Self::Batch<'_>) -> Result<()>,
    ) -> Result<()>;

    /// How long the last epoch waited for batches that were not ready.
    fn last_wait(&self) -> Duration;
}

/// The batch type of a task's source.
pub type BatchOf<'a, T> = <<T as Task>::Source as BatchSource>::Batch<'a>;

/// One forward-and-loss step's result.
pub struct Step<O> {
    /// The scalar the trainer backpropagates (training phases).
    pub loss: Tensor,
    /// What the phase's rows keep of the batch.
    pub output: O,
}

/// A model the training loop can train: its step and its metrics.
pub trait Task {
    type Source: BatchSource;
    /// A step's per-batch results, still on the device.
    type Output;
    /// A phase's accumulated results, kept on the device until its end.
    type Rows;

    /// Forward and loss of `batch`: in training mode (augmentation, batch
    /// statistics) when `train`, else in eval mode (the caller holds a
    /// no-grad guard). Libtorch's generator is seeded for the batch. Charges
    /// its input and augmentation time to `laps`.
    fn step(&self, batch: &BatchOf<'_, Self>, train: bool, laps: &mut Laps) -> Step<Self::Output>;

    /// Empty rows for a phase of `samples` samples.
    fn rows(&self, samples: usize, device: Device) -> Self::Rows;

    /// Adds a batch's results to the phase's rows.
    fn push(&self, rows: &mut Self::Rows, batch: &BatchOf<'_, Self>, output: &Self::Output);

    /// The finished phase's metrics (one host read).
    fn summarize(&self, rows: &Self::Rows, kind: PhaseKind) -> PhaseSummary;

    /// The model, for the run log: "LunaModel", with its variant.
    fn describe(&self) -> String;

    /// What the run folders are named after: `cls` or `seg`.
    fn run_kind(&self) -> RunKind {
        RunKind::Classify
    }

    /// What the weights file records of the model; `None` is LunaModel's
    /// architecture from the run's configuration.
    fn architecture(&self) -> Option<Architecture> {
        None
    }

    /// TensorBoard pictures after validating epoch `epoch` (the
    /// segmentation task's slices); none by default.
    fn validation_images(&self, _epoch: usize) -> Result<Vec<(String, Png)>> {
        Ok(Vec::new())
    }

    /// `--tb-activations`: each block's output for input `x`, in eval mode;
    /// none for a task that draws no activations.
    fn block_outputs(&self, _x: &Tensor) -> Vec<Tensor> {
        Vec::new()
    }
}

/// A finished phase as its task sums it up.
#[derive(Clone, Debug)]
pub struct PhaseSummary {
    /// The metrics of the phase's metrics.jsonl line and TensorBoard scalars.
    pub metrics: EpochMetrics,
    /// Validation phases of a task that ranks samples: the ROC AUC
    /// (`Some(None)` when a class is missing).
    pub auc: Option<Option<f64>>,
    /// Per-sample probabilities, for TensorBoard's PR curve and histograms.
    pub samples: Option<Samples>,
}
