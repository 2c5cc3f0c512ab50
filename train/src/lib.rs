//! Training engine for LunaModel over a prepcache cache.
//!
//! The book's chapter 11–12 classifier, trained from the candidate cache
//! that `prepcache build` writes, split into modules with one job each:
//!
//! - [`sampler`]: the book's train/validation split and balanced mapping;
//!   an epoch's order is a pure function of (seed, epoch).
//! - [`loader`]: worker threads decode cached int16 crops into a ring of
//!   reusable (pinned, on CUDA) batch buffers ahead of the training step.
//! - [`augment`]: flips, shifts, scaling, rotation and noise, batched on the device.
//! - [`model`]: `LunaModel` under the book's `state_dict` names; [`sgd`]:
//!   SGD with momentum whose buffers can be saved.
//! - [`metrics`], [`tensorboard`], [`checkpoint`]: what a run records.
//! - [`fit`]: the epoch loop wiring them together; [`cli`]: its flags.
//! - [`score`]: a saved model over cached candidates, for
//!   [`eval_checkpoint`] (`train eval`: metrics, ROC/PR, FROC/CPM, plots)
//!   and [`predict`] (`train predict`: LUNA16 submission CSV).
//!
//! The binary (`main.rs`) only parses the command line and calls
//! [`fit::run`] or a subcommand's `run`.

pub mod augment;
pub mod bench_loader;
pub mod bench_step;
pub mod checkpoint;
pub mod cli;
pub mod doctor;
pub mod eval_checkpoint;
pub mod evaluation;
pub mod fit;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod sampler;
pub mod score;
pub mod sgd;
pub mod tensorboard;
