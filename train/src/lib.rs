//! Training engine for LunaModel over a prepcache cache.
//!
//! Data flows one way, cache → batches → model → records:
//!
//! - [`config`]: the typed, versioned [`RunConfig`](config::RunConfig),
//!   resolved once from defaults, `--config FILE.toml` and the flags
//!   ([`cli`], the only module that knows clap).
//! - [`data`]: the split, the epoch orders ([`data::sampler`]), the loader
//!   threads that decode cached crops into reusable (pinned, on CUDA)
//!   batch buffers, and augmentation on the device.
//! - [`model`]: LunaModel and its variants, and [`model::forward_batch`],
//!   the one forward pass training, validation, eval, predict and
//!   bench-step all use; [`optim`]: optimizers whose state is saved.
//! - [`run`]: a training run as a [`Trainer`](run::Trainer), a phase
//!   driver, a [`RunDir`](run::RunDir), a [`Recorder`](run::Recorder) and
//!   checkpoints.
//! - [`evaluate`]: the one metrics core ([`evaluate::metrics`]) plus ROC/PR,
//!   FROC/CPM and plots.
//! - [`inference`]: a saved model over cached candidates, for `eval` and
//!   `predict`; [`analyze`]: a U-Net over a whole scan, and its mask cut
//!   into nodule candidates (chapter 14).
//! - [`commands`]: one module per subcommand; [`bench`]: the measurements.
//! - [`sweep`]: a study as many runs (variants × seeds) in child processes.
//! - [`compare`]: finished runs side by side.
//!
//! The modules form layers (README, Architecture; checked by a test in
//! `layers.rs`): a module uses only lower ones, so nothing below
//! [`config`] reads the run configuration or the command line.

pub mod analyze;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod host_memory;
pub mod inference;
#[cfg(test)]
mod layers;
pub mod model;
pub mod optim;
pub mod run;
pub mod sweep;
pub mod torch_threads;
