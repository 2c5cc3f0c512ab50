//! The synthetic dataset's integration tests, one binary for all.

mod generate;
