//! A training run, as small types with one job each: [`Trainer`] (model,
//! optimizer, one step), [`phase`] (one pass over a sample list), [`driver`]
//! (the epochs, the resume, the stop), [`RunDir`] (every path a run writes),
//! [`Recorder`] (terminal, metrics.jsonl, TensorBoard, progress bar) and
//! [`checkpoint`] (what a resumed run starts from).

pub mod activations;
pub mod best;
pub mod checkpoint;
pub mod driver;
pub mod interrupt;
pub mod param_histograms;
pub mod phase;
pub mod profile;
pub mod recorder;
pub mod run_dir;
pub mod tensor_file;
pub mod tensorboard;
pub mod trainer;

pub use driver::{run, run_until, RunOutcome, TrainPlan};
pub use interrupt::Interrupted;
pub use recorder::Recorder;
pub use run_dir::RunDir;
pub use trainer::Trainer;
