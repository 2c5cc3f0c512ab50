//! One pass over a list of samples: every batch through the trainer, the
//! task's rows kept on the device until the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Result;

use super::interrupt::StopRequested;
use super::profile::Part;
use super::recorder::Recorder;
use super::task::{BatchSource, Located, PhaseSummary, Task};
use super::trainer::Trainer;
use crate::evaluate::metrics_log::{TRAIN_PHASE, VAL_PHASE};

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
pub type AfterStep<'a, T> = &'a mut dyn FnMut(&Trainer<T>, usize) -> Result<()>;

/// Runs `phase`, checking `stop` before each batch; returns the task's
/// summary of it. Validation runs without autograd and with BatchNorm's
/// running averages.
pub fn run_phase<T: Task>(
    phase: &Phase,
    source: &mut T::Source,
    trainer: &mut Trainer<T>,
    stop: &AtomicBool,
    mut after_step: Option<AfterStep<T>>,
) -> Result<PhaseSummary> {
    let mut rows = trainer.task().rows(phase.order.len(), trainer.device());
    let bar = Recorder::progress(phase);
    let started = Instant::now();
    let _no_grad = (phase.kind == PhaseKind::Validate).then(tch::no_grad_guard);
    source.run_epoch(phase.kind, phase.order, &mut |batch| {
        if stop.load(Ordering::SeqCst) {
            return Err(StopRequested.into());
        }
        let out = match phase.kind {
            PhaseKind::Train => trainer.train_batch(&batch, phase.epoch),
            PhaseKind::Validate => trainer.validate_batch(&batch, phase.epoch),
        };
        trainer.task().push(&mut rows, &batch, &out);
        let batch_len = batch.len();
        bar.inc(batch_len as u64);
        trainer.lap(Part::Metrics);
        if let (PhaseKind::Train, Some(hook)) = (phase.kind, after_step.as_mut()) {
            hook(trainer, batch.start() + batch_len)?;
        }
        Ok(())
    })?;
    let summary = trainer.task().summarize(&rows, phase.kind);
    bar.finish_and_clear();
    let (wall, wait) = (started.elapsed(), source.last_wait());
    Recorder::timing(phase, wall.as_secs_f64(), wait.as_secs_f64());
    if let Some(breakdown) = trainer.profile_report(wait, wall) {
        Recorder::profile(phase, &breakdown);
    }
    Ok(summary)
}
