//! Optimizers whose whole state can be saved with a checkpoint.

pub mod loss_scale;
pub mod sgd;

pub use loss_scale::{backward_and_step, LossScaleState, LossScaler};

pub use sgd::{Sgd, SgdError};
