//! The metaimage crate's integration tests, one binary (one link) for all.

mod fuzz;
mod reader;
mod sitk;
