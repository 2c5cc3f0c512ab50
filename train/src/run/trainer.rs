//! The task's model under training, its optimizer, and one step of each
//! kind; the task ([`Task`]) says what a step computes. A new optimizer or
//! precision mode changes this file and nothing above it.

use std::path::Path;
use std::time::Duration;

use tch::nn::{self, VarStore};
use tch::Device;

use super::checkpoint::{self, CheckpointError, RunState};
use super::classify::Classify;
use super::param_histograms;
use super::profile::{Laps, Part, StepProfile};
use super::task::{BatchOf, Located, Task};
use super::tensorboard::proto::HistogramProto;
use crate::config::{OptimizerKind, RunConfig};
use crate::data::sampler::batch_seed;
use crate::model::{parameter_count, prepare_weights};
use crate::optim::schedule::RunLength;
use crate::optim::{loss_scale, LossScaler, Optimize, Optimizer, Schedule};

/// Seeds of the two phases' batches: augmentation noise of a batch depends
/// only on (seed, epoch, phase, batch), not on what ran before it.
const PHASE_TRAIN: u64 = 0;
const PHASE_VAL: u64 = 1;

pub struct Trainer<T = Classify> {
    vs: VarStore,
    task: T,
    optimizer: Optimizer,
    optimizer_kind: OptimizerKind,
    /// The learning rate of each step.
    schedule: Schedule,
    /// fp16 only.
    loss_scaler: Option<LossScaler>,
    /// `--profile` only.
    profile: Option<StepProfile>,
    seed: u64,
    device: Device,
    /// Optimizer steps taken so far in the run.
    pub steps: u64,
}

impl Trainer<Classify> {
    /// LunaModel classification as `config` describes it (fine-tuning
    /// freezes its blocks before the optimizer takes the trainable ones):
    /// see [`Trainer::with_task`].
    pub fn new(
        config: &RunConfig,
        device: Device,
        samples_per_epoch: usize,
    ) -> Result<Self, tch::TchError> {
        Trainer::try_with_task(config, device, samples_per_epoch, |root| {
            Classify::new(root, config)
        })
    }
}

impl<T: Task> Trainer<T> {
    /// The task `build` makes, its weights freshly initialised under the
    /// root it is given, drawn from libtorch's generator seeded with the
    /// run's seed (`config`'s seed and compute modes are resolved).
    /// `samples_per_epoch` (training samples per epoch) and the epochs the
    /// schedule spans fix the learning rate of every step.
    pub fn with_task(
        config: &RunConfig,
        device: Device,
        samples_per_epoch: usize,
        build: impl FnOnce(&nn::Path) -> T,
    ) -> Self {
        let built = Trainer::try_with_task(config, device, samples_per_epoch, |root| {
            Ok::<T, std::convert::Infallible>(build(root))
        });
        match built {
            Ok(trainer) => trainer,
            Err(never) => match never {},
        }
    }

    /// [`Trainer::with_task`] for a `build` that may fail. The optimizer
    /// steps the variables that require a gradient once `build` returns.
    pub fn try_with_task<E>(
        config: &RunConfig,
        device: Device,
        samples_per_epoch: usize,
        build: impl FnOnce(&nn::Path) -> Result<T, E>,
    ) -> Result<Self, E> {
        tch::manual_seed(config.seed() as i64);
        let vs = VarStore::new(device);
        let task = build(&vs.root())?;
        prepare_weights(&vs, config.compute);
        let optimizer = Optimizer::from_config(&vs, &config.optimizer);
        let run_length = RunLength::of(
            &config.optimizer,
            config.data.batch_size,
            config.run.epochs,
            samples_per_epoch,
        );
        Ok(Trainer {
            vs,
            task,
            optimizer,
            optimizer_kind: config.optimizer.name,
            schedule: Schedule::new(&config.optimizer, run_length),
            loss_scaler: config
                .compute
                .needs_loss_scaling()
                .then(|| LossScaler::new(device)),
            profile: config.run.profile.then(|| StepProfile::new(device)),
            seed: config.seed(),
            device,
            steps: 0,
        })
    }

    pub fn task(&self) -> &T {
        &self.task
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn parameter_count(&self) -> i64 {
        parameter_count(&self.vs)
    }

    /// The scalars the optimizer steps (fewer than
    /// [`Trainer::parameter_count`] when blocks are frozen).
    pub fn trainable_count(&self) -> i64 {
        self.optimizer
            .params()
            .iter()
            .map(|(_, p)| p.numel() as i64)
            .sum()
    }

    /// The model's variables, for loading pretrained weights into them
    /// before the first step (fine-tuning).
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// `--tb-histograms-every`: histograms of every trainable parameter and
    /// of the gradient of the last step.
    pub fn parameter_histograms(&self) -> Result<Vec<(String, HistogramProto)>, tch::TchError> {
        param_histograms::parameter_histograms(&self.vs)
    }

    /// The task's step in training mode, backward, one optimizer step.
    pub fn train_batch(&mut self, batch: &BatchOf<'_, T>, epoch: usize) -> T::Output {
        self.start_batch();
        tch::manual_seed(batch_seed(self.seed, epoch, PHASE_TRAIN, batch.index()));
        self.optimizer.zero_grad();
        let step = self
            .task
            .step(batch, true, &mut Laps(self.profile.as_mut()));
        self.lap(Part::Forward);
        loss_scale::backward(&step.loss, self.loss_scaler.as_ref());
        self.lap(Part::Backward);
        self.optimizer.set_lr(self.schedule.lr_at(self.steps));
        loss_scale::step(&mut self.optimizer, self.loss_scaler.as_mut());
        self.lap(Part::Optimizer);
        self.steps += 1;
        step.output
    }

    /// The learning rate of the last step taken (of the first one before
    /// any): what the schedule gave, for the metrics.
    pub fn current_lr(&self) -> f64 {
        self.schedule.lr_at(self.steps.saturating_sub(1))
    }

    fn start_batch(&mut self) {
        if let Some(p) = &mut self.profile {
            p.start();
        }
    }

    /// With `--profile`: charges the time since the last lap to `part`.
    pub fn lap(&mut self, part: Part) {
        if let Some(p) = &mut self.profile {
            p.lap(part);
        }
    }

    /// With `--profile`: the breakdown of the phase that just ended.
    pub fn profile_report(&mut self, wait: Duration, wall: Duration) -> Option<String> {
        self.profile.as_mut().map(|p| p.report(wait, wall))
    }

    /// The task's step in eval mode; the caller holds a no-grad guard.
    pub fn validate_batch(&mut self, batch: &BatchOf<'_, T>, epoch: usize) -> T::Output {
        self.start_batch();
        // Nothing random runs in eval mode today; seeding anyway keeps a
        // future random op reproducible.
        tch::manual_seed(batch_seed(self.seed, epoch, PHASE_VAL, batch.index()));
        let step = self
            .task
            .step(batch, false, &mut Laps(self.profile.as_mut()));
        self.lap(Part::Forward);
        step.output
    }

    /// Writes the weights, the optimizer state and `state` into `dir`.
    pub fn save(&self, dir: &Path, state: &RunState) -> Result<(), CheckpointError> {
        let state = RunState {
            loss_scale: self.loss_scaler.as_ref().map(LossScaler::state),
            ..state.clone()
        };
        let architecture = self.task.architecture();
        checkpoint::save_as(
            dir,
            &self.vs,
            &self.optimizer,
            &state,
            architecture.as_ref(),
        )
    }

    /// Loads a checkpoint written by [`Trainer::save`] for the same model.
    pub fn restore(&mut self, dir: &Path) -> Result<RunState, CheckpointError> {
        let state = checkpoint::load(dir, &mut self.vs, &mut self.optimizer)?;
        let saved = state.config.optimizer.name;
        if saved != self.optimizer_kind {
            return Err(CheckpointError::Mismatch {
                path: dir.join(checkpoint::TRAINER_FILE),
                reason: format!(
                    "holds the state of optimizer {saved:?}; this run's optimizer is {:?}",
                    self.optimizer_kind
                ),
            });
        }
        self.steps = state.steps;
        if let (Some(scaler), Some(saved)) = (&mut self.loss_scaler, state.loss_scale) {
            *scaler = LossScaler::from_state(saved, self.device);
        }
        Ok(state)
    }
}
