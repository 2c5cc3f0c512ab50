//! Optimizers whose whole state can be saved with a checkpoint, with
//! `torch.optim` semantics, and the learning-rate schedules that drive them.

pub mod adam;
pub mod config;
pub mod loss_scale;
pub mod params;
pub mod rmsprop;
pub mod schedule;
pub mod sgd;
pub mod slots;
#[cfg(test)]
mod test_support;

use tch::nn::VarStore;
use tch::Tensor;

pub use config::{LrSchedule, OptimizerConfig, OptimizerKind};

pub use adam::Adam;
pub use loss_scale::{backward_and_step, LossScaleState, LossScaler};
pub use params::{OptimizerStateError, Params};
pub use rmsprop::RmsProp;
pub use schedule::Schedule;
pub use sgd::Sgd;

/// What the trainer, the loss scaler and checkpoints need of an optimizer.
pub trait Optimize {
    /// The `torch.optim` class this follows, for messages.
    fn name(&self) -> &'static str;
    /// The parameters it steps, in their fixed order.
    fn params(&self) -> &Params;
    /// One step: with `skip` (a bool `[1]` tensor on the device), no change
    /// at all where it is true, decided on the device so that a loss scaler
    /// skips overflowing steps without a host synchronisation. A skipped
    /// step changes no parameter and no state (step counts included); a
    /// step that is not skipped equals the plain one to within rounding.
    fn update(&mut self, skip: Option<&Tensor>);
    fn lr(&self) -> f64;
    /// The learning rate of the following steps (schedules call it before each).
    fn set_lr(&mut self, lr: f64);
    /// The whole state as `<slot>.<param>` tensors, for a checkpoint.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restores what [`Optimize::state`] gave, onto the parameters' device.
    fn load_state(&mut self, saved: Vec<(String, Tensor)>) -> Result<(), OptimizerStateError>;

    fn zero_grad(&mut self) {
        self.params().zero_grad();
    }

    fn step(&mut self) {
        self.update(None);
    }

    /// [`Optimize::step`] unless `skip` is true: see [`Optimize::update`].
    fn step_unless(&mut self, skip: &Tensor) {
        self.update(Some(skip));
    }

    /// The gradients that exist, in parameter order (shallow clones).
    fn gradients(&self) -> Vec<Tensor> {
        self.params().gradients()
    }
}

/// The optimizer a run's `[optimizer]` section names.
pub enum Optimizer {
    Sgd(Sgd),
    /// Adam, or AdamW when built with decoupled weight decay.
    Adam(Adam),
    RmsProp(RmsProp),
}

impl Optimizer {
    /// The optimizer of `config` over `vs`'s trainable variables, at the
    /// config's base learning rate (a schedule sets the rate per step).
    pub fn from_config(vs: &VarStore, config: &OptimizerConfig) -> Self {
        let c = config;
        match c.name {
            OptimizerKind::Sgd => Optimizer::Sgd(
                Sgd::new(vs, c.lr, c.momentum)
                    .with_weight_decay(c.weight_decay)
                    .with_nesterov(c.nesterov),
            ),
            OptimizerKind::Adam | OptimizerKind::AdamW => Optimizer::Adam(Adam::new(
                vs,
                adam::AdamConfig {
                    lr: c.lr,
                    betas: c.betas,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    decoupled_weight_decay: c.name == OptimizerKind::AdamW,
                },
            )),
            OptimizerKind::RmsProp => Optimizer::RmsProp(RmsProp::new(
                vs,
                rmsprop::RmsPropConfig {
                    lr: c.lr,
                    alpha: c.alpha,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    momentum: c.momentum,
                },
            )),
        }
    }

    fn inner(&self) -> &dyn Optimize {
        match self {
            Optimizer::Sgd(o) => o,
            Optimizer::Adam(o) => o,
            Optimizer::RmsProp(o) => o,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Optimize {
        match self {
            Optimizer::Sgd(o) => o,
            Optimizer::Adam(o) => o,
            Optimizer::RmsProp(o) => o,
        }
    }
}

impl Optimize for Optimizer {
    fn name(&self) -> &'static str {
        self.inner().name()
    }

    fn params(&self) -> &Params {
        self.inner().params()
    }

    fn update(&mut self, skip: Option<&Tensor>) {
        self.inner_mut().update(skip)
    }

    fn lr(&self) -> f64 {
        self.inner().lr()
    }

    fn set_lr(&mut self, lr: f64) {
        self.inner_mut().set_lr(lr)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.inner().state()
    }

    fn load_state(&mut self, saved: Vec<(String, Tensor)>) -> Result<(), OptimizerStateError> {
        self.inner_mut().load_state(saved)
    }
}
