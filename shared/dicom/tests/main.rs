//! The dicom-series crate's integration tests, one binary (one link) for all.

mod fuzz;
mod refusals;
mod sitk;
mod write;
