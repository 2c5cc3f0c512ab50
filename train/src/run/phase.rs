//! One pass over a list of samples: every batch through the trainer, the
//! metric rows kept on the device until the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Result;

use super::interrupt::StopRequested;
use super::profile::Part;
use super::recorder::Recorder;
use super::trainer::Trainer;
use crate::data::loader::Loader;
use crate::evaluate::metrics_log::{TRAIN_PHASE, VAL_PHASE};
use crate::evaluate::{MetricRows, Samples};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseKind {
    Train,
    Validate,
}

impl PhaseKind {
    /// The book's log names, as metrics.jsonl lines carry them.
    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Train => TRAIN_PHASE,
            PhaseKind::Validate => VAL_PHASE,
        }
    }
}

pub struct Phase<'a> {
    pub kind: PhaseKind,
    /// 1-based, like the book's log.
    pub epoch: usize,
    /// Cache indices, in visiting order.
    pub order: &'a [u32],
}

/// Called after each training step with the trainer and the number of the
/// phase's samples done so far (TensorBoard's per-step figures).
pub type AfterStep<'a> = &'a mut dyn FnMut(&Trainer, usize) -> Result<()>;

/// Runs `phase`, checking `stop` before each batch; returns the per-sample
/// rows. Validation runs without autograd and with BatchNorm's running
/// averages.
pub fn run_phase(
    phase: &Phase,
    loader: &mut Loader,
    trainer: &mut Trainer,
    stop: &AtomicBool,
    mut after_step: Option<AfterStep>,
) -> Result<Samples> {
    let mut rows = MetricRows::new(phase.order.len(), trainer.device());
    let bar = Recorder::progress(phase);
    let started = Instant::now();
    let _no_grad = (phase.kind == PhaseKind::Validate).then(tch::no_grad_guard);
    loader.run_epoch::<anyhow::Error>(phase.order, |batch| {
        if stop.load(Ordering::SeqCst) {
            return Err(StopRequested.into());
        }
        let out = match phase.kind {
            PhaseKind::Train => trainer.train_batch(&batch, phase.epoch),
            PhaseKind::Validate => trainer.validate_batch(&batch, phase.epoch),
        };
        rows.push(&batch.labels, &out.prob_pos, &out.loss);
        let batch_len = batch.labels.size()[0] as usize;
        bar.inc(batch_len as u64);
        trainer.lap(Part::Metrics);
        if let (PhaseKind::Train, Some(hook)) = (phase.kind, after_step.as_mut()) {
            hook(trainer, batch.start + batch_len)?;
        }
        Ok(())
    })?;
    let samples = rows.to_host();
    bar.finish_and_clear();
    let (wall, wait) = (started.elapsed(), loader.last_wait());
    Recorder::timing(phase, wall.as_secs_f64(), wait.as_secs_f64());
    if let Some(breakdown) = trainer.profile_report(wait, wall) {
        Recorder::profile(phase, &breakdown);
    }
    Ok(samples)
}
