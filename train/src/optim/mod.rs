//! Optimizers whose whole state can be saved with a checkpoint.

pub mod sgd;

pub use sgd::{Sgd, SgdError};
