//! The synthetic dataset's integration tests, one binary for all.

mod crops;
mod generate;
