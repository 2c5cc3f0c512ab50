//! The learning rate as a pure function of the optimizer step index, so a
//! resumed run (which restores its step count) continues the schedule
//! exactly where it stopped.
//!
//! `s` is the 0-based index of the step about to be taken, `E` the steps
//! per epoch, `ceil(samples_per_epoch / batch_size)`, `T = E · epochs` the
//! steps of the whole run, and `lr` the configured (base, or peak) rate.
//! The rate of step `s` is what torch's scheduler gives after `s` calls of
//! `scheduler.step()`, one per optimizer step:
//!
//! - `constant`: `lr`.
//! - `step`: `lr · γ^⌊s / (E · step_epochs)⌋` — `StepLR(step_size =
//!   E · step_epochs, gamma = γ)`, i.e. ×γ every `step_epochs` epochs.
//! - `cosine`: `lr · (1 + cos(π · s / T)) / 2` — `CosineAnnealingLR(T_max =
//!   T, eta_min = 0)` in its closed form.
//! - `onecycle`: `OneCycleLR(max_lr = lr, total_steps = T)` with its
//!   defaults (pct_start 0.3, cos annealing, div_factor 25, final_div_factor
//!   1e4, three_phase false) but `cycle_momentum = False`: the momentum (β1)
//!   stays as configured. From `lr/25` up to `lr` by step `0.3·T − 1`, then
//!   down to `lr/25/1e4` at step `T − 1`, each half a cosine.
//!
//! Warm-up over `W = ceil(warmup_samples / batch_size)` steps multiplies any
//! of these by `min(1, (s + 1)/(W + 1))`: `LinearLR(start_factor = 1/(W+1),
//! total_iters = W)`, so the first step runs at `lr/(W+1)` and step `W` at
//! the full rate.
//!
//! `cosine` and `onecycle` span `optimizer.schedule_epochs` epochs, which a
//! run fixes to its `run.epochs` when it starts ([`pin_epochs`]): a run
//! resumed with more epochs keeps its schedule, and its steps past the end
//! keep the last step's rate.

use std::f64::consts::PI;

use super::config::{LrSchedule, OptimizerConfig};

pub const ONECYCLE_PCT_START: f64 = 0.3;
pub const ONECYCLE_DIV_FACTOR: f64 = 25.0;
pub const ONECYCLE_FINAL_DIV_FACTOR: f64 = 1e4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    base_lr: f64,
    kind: LrSchedule,
    gamma: f64,
    /// `step`: steps between two decays.
    decay_every: u64,
    /// `T`.
    total_steps: u64,
    /// `W`.
    warmup_steps: u64,
}

/// What a schedule needs to know of the run besides its `[optimizer]` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLength {
    pub batch_size: u64,
    pub samples_per_epoch: u64,
    pub epochs: u64,
}

impl RunLength {
    /// A run of `epochs` epochs of `samples_per_epoch` training samples in
    /// batches of `batch_size`, over the epochs `optimizer`'s schedule spans.
    pub fn of(
        optimizer: &OptimizerConfig,
        batch_size: u32,
        epochs: usize,
        samples_per_epoch: usize,
    ) -> Self {
        RunLength {
            batch_size: u64::from(batch_size),
            samples_per_epoch: samples_per_epoch as u64,
            epochs: optimizer.schedule_epochs.map_or(epochs as u64, u64::from),
        }
    }

    /// `E`; at least 1.
    pub fn steps_per_epoch(&self) -> u64 {
        self.samples_per_epoch
            .div_ceil(self.batch_size.max(1))
            .max(1)
    }

    /// `T`; at least 1.
    pub fn total_steps(&self) -> u64 {
        (self.steps_per_epoch() * self.epochs).max(1)
    }
}

/// A starting run's `cosine` or `onecycle` schedule spans its `run_epochs`
/// unless told otherwise; recorded in the config, that survives a resume.
pub fn pin_epochs(config: &mut OptimizerConfig, run_epochs: usize) {
    if matches!(config.schedule, LrSchedule::Cosine | LrSchedule::OneCycle) {
        config
            .schedule_epochs
            .get_or_insert(u32::try_from(run_epochs).unwrap_or(u32::MAX));
    }
}

impl Schedule {
    pub fn new(config: &OptimizerConfig, run: RunLength) -> Self {
        Schedule {
            base_lr: config.lr,
            kind: config.schedule,
            gamma: config.gamma,
            decay_every: (run.steps_per_epoch() * u64::from(config.step_epochs)).max(1),
            total_steps: run.total_steps(),
            warmup_steps: config.warmup_samples.div_ceil(run.batch_size.max(1)),
        }
    }

    /// `lr` at every step.
    pub fn constant(lr: f64) -> Self {
        Schedule {
            base_lr: lr,
            kind: LrSchedule::Constant,
            gamma: 1.0,
            decay_every: 1,
            total_steps: 1,
            warmup_steps: 0,
        }
    }

    /// The learning rate of step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        self.base_lr * self.warmup_factor(step) * self.schedule_factor(step)
    }

    fn warmup_factor(&self, step: u64) -> f64 {
        if step >= self.warmup_steps {
            1.0
        } else {
            (step + 1) as f64 / (self.warmup_steps + 1) as f64
        }
    }

    /// The schedule's rate over the base rate.
    fn schedule_factor(&self, step: u64) -> f64 {
        let last = self.total_steps - 1;
        match self.kind {
            LrSchedule::Constant => 1.0,
            LrSchedule::Step => self.gamma.powf((step / self.decay_every) as f64),
            LrSchedule::Cosine => {
                (1.0 + (PI * step.min(last) as f64 / self.total_steps as f64).cos()) / 2.0
            }
            LrSchedule::OneCycle => onecycle(self.total_steps, step.min(last)),
        }
    }
}

/// `OneCycleLR`'s rate over `max_lr`, computed as torch does
/// (`_annealing_cos` between the phase ends).
fn onecycle(total_steps: u64, step: u64) -> f64 {
    let initial = 1.0 / ONECYCLE_DIV_FACTOR;
    let min = initial / ONECYCLE_FINAL_DIV_FACTOR;
    let peak_step = ONECYCLE_PCT_START * total_steps as f64 - 1.0;
    let last_step = total_steps as f64 - 1.0;
    let s = step as f64;
    if s <= peak_step {
        annealing_cos(initial, 1.0, s / peak_step)
    } else {
        annealing_cos(1.0, min, (s - peak_step) / (last_step - peak_step))
    }
}

fn annealing_cos(start: f64, end: f64, pct: f64) -> f64 {
    let cos_out = (PI * pct).cos() + 1.0;
    end + (start - end) / 2.0 * cos_out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: LrSchedule) -> OptimizerConfig {
        OptimizerConfig {
            lr: 0.1,
            schedule: kind,
            ..OptimizerConfig::default()
        }
    }

    const RUN: RunLength = RunLength {
        batch_size: 4,
        samples_per_epoch: 10,
        epochs: 5,
    };

    #[test]
    fn a_starting_run_pins_the_epochs_of_annealing_schedules_only() {
        let mut c = config(LrSchedule::Cosine);
        pin_epochs(&mut c, 5);
        assert_eq!(c.schedule_epochs, Some(5));
        // Resumed with more epochs: the schedule keeps its span.
        pin_epochs(&mut c, 9);
        assert_eq!(c.schedule_epochs, Some(5));
        assert_eq!(RunLength::of(&c, 32, 9, 10).epochs, 5);
        // Constant and step rates need no span; their configs stay as they were.
        for kind in [LrSchedule::Constant, LrSchedule::Step] {
            let mut c = config(kind);
            pin_epochs(&mut c, 5);
            assert_eq!(c.schedule_epochs, None);
        }
    }

    #[test]
    fn run_length_rounds_partial_batches_up() {
        assert_eq!(RUN.steps_per_epoch(), 3);
        assert_eq!(RUN.total_steps(), 15);
    }

    #[test]
    fn constant_is_exactly_the_configured_rate() {
        let s = Schedule::new(&config(LrSchedule::Constant), RUN);
        assert!((0..40).all(|k| s.lr_at(k) == 0.1));
        assert!((0..40).all(|k| Schedule::constant(0.1).lr_at(k) == 0.1));
    }

    #[test]
    fn step_decays_every_step_epochs_epochs() {
        let c = OptimizerConfig {
            step_epochs: 2,
            gamma: 0.5,
            ..config(LrSchedule::Step)
        };
        let s = Schedule::new(&c, RUN);
        // Epochs 1–2 are steps 0..6, epochs 3–4 steps 6..12.
        assert_eq!(s.lr_at(5), 0.1);
        assert_eq!(s.lr_at(6), 0.05);
        assert_eq!(s.lr_at(11), 0.05);
        assert_eq!(s.lr_at(12), 0.025);
    }

    #[test]
    fn cosine_falls_from_the_rate_towards_zero_and_stays_at_the_end() {
        let s = Schedule::new(&config(LrSchedule::Cosine), RUN);
        assert_eq!(s.lr_at(0), 0.1);
        let half = s.lr_at(7) - 0.1 * (1.0 + (PI * 7.0 / 15.0).cos()) / 2.0;
        assert!(half.abs() < 1e-15);
        assert!((1..15).all(|k| s.lr_at(k) < s.lr_at(k - 1)));
        assert_eq!(s.lr_at(100), s.lr_at(14));
    }

    #[test]
    fn onecycle_rises_to_the_peak_then_falls_to_its_floor() {
        let run = RunLength { epochs: 10, ..RUN }; // T = 30: the peak is step 8.
        let s = Schedule::new(&config(LrSchedule::OneCycle), run);
        assert!((s.lr_at(0) - 0.1 / 25.0).abs() < 1e-15);
        assert!((s.lr_at(8) - 0.1).abs() < 1e-15);
        assert!((s.lr_at(29) - 0.1 / 25.0 / 1e4).abs() < 1e-15);
        assert!((1..=8).all(|k| s.lr_at(k) > s.lr_at(k - 1)));
        assert!((9..30).all(|k| s.lr_at(k) < s.lr_at(k - 1)));
    }

    #[test]
    fn onecycle_of_a_tiny_run_has_no_division_by_zero() {
        for total in 1..=4 {
            let run = RunLength {
                batch_size: 1,
                samples_per_epoch: total,
                epochs: 1,
            };
            let s = Schedule::new(&config(LrSchedule::OneCycle), run);
            assert!((0..total).all(|k| s.lr_at(k).is_finite() && s.lr_at(k) > 0.0));
        }
    }

    #[test]
    fn warmup_multiplies_the_schedule_from_near_zero_to_one() {
        let c = OptimizerConfig {
            warmup_samples: 10, // W = 3 steps of 4
            ..config(LrSchedule::Cosine)
        };
        let warm = Schedule::new(&c, RUN);
        let cold = Schedule::new(&config(LrSchedule::Cosine), RUN);
        for (k, factor) in [(0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0), (9, 1.0)] {
            let expected = factor * cold.lr_at(k);
            assert!((warm.lr_at(k) - expected).abs() < 1e-17, "step {k}");
        }
    }
}
