//! Measurements behind `make bench`: the loader alone ([`loader`]), the
//! classifier's training step alone ([`step`]) and the U-Net's step and
//! full-slice inference ([`seg_step`]).

pub mod loader;
pub mod seg_step;
pub mod step;
