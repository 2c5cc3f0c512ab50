//! Measurements behind `make bench`: the loader alone ([`loader`]) and the
//! training step alone ([`step`]).

pub mod loader;
pub mod step;
