//! The `[optimizer]` section of a run configuration: which optimizer and
//! learning-rate schedule, with PyTorch's semantics.

use serde::{Deserialize, Serialize};

/// The optimizer and its learning-rate schedule (PyTorch semantics).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub name: OptimizerKind,
    /// The base (peak, for `onecycle`) learning rate.
    pub lr: f64,
    /// SGD's and RMSprop's momentum.
    pub momentum: f64,
    /// L2 (decoupled for AdamW).
    pub weight_decay: f64,
    /// SGD only.
    pub nesterov: bool,
    /// Adam and AdamW.
    pub betas: [f64; 2],
    /// Adam, AdamW and RMSprop.
    pub eps: f64,
    /// RMSprop's smoothing constant.
    pub alpha: f64,
    pub schedule: LrSchedule,
    /// `step`: multiply by `gamma` every this many epochs.
    pub step_epochs: u32,
    pub gamma: f64,
    /// Linear warm-up over this many training samples (from lr/(W+1), W steps).
    pub warmup_samples: u64,
    /// `cosine` and `onecycle`: the epochs the schedule spans. A run that
    /// starts without it fixes it to its `run.epochs`, so that a resumed run
    /// (even one given more epochs) keeps the schedule it began with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_epochs: Option<u32>,
}

/// `--optimizer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    Adam,
    AdamW,
    RmsProp,
}

/// `--lr-schedule`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    #[default]
    Constant,
    Step,
    Cosine,
    OneCycle,
}

impl Default for OptimizerConfig {
    /// The book's SGD: lr 0.001, momentum 0.99, a constant rate.
    fn default() -> Self {
        OptimizerConfig {
            name: OptimizerKind::Sgd,
            lr: 0.001,
            momentum: 0.99,
            weight_decay: 0.0,
            nesterov: false,
            betas: [0.9, 0.999],
            eps: 1e-8,
            alpha: 0.99,
            schedule: LrSchedule::Constant,
            step_epochs: 1,
            gamma: 0.1,
            warmup_samples: 0,
            schedule_epochs: None,
        }
    }
}
