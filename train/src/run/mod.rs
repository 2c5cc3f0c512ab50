//! A training run, as small types with one job each: [`Task`] (a model's
//! forward-and-loss step and its metrics; [`Classify`] is LunaModel's),
//! [`Trainer`] (the task's weights, optimizer, one step), [`phase`] (one pass over a sample list), [`driver`]
//! (the epochs, the resume, the stop), [`RunDir`] (every path a run writes),
//! [`Recorder`] (terminal, metrics.jsonl, TensorBoard, progress bar) and
//! [`checkpoint`] (what a resumed run starts from).

pub mod activations;
pub mod best;
pub mod cache_batches;
pub mod checkpoint;
pub mod classifier_data;
pub mod classify;
pub mod driver;
pub mod finetune;
pub mod interrupt;
pub mod param_histograms;
pub mod phase;
pub mod profile;
pub mod recorder;
pub mod run_dir;
pub mod segment;
pub mod slice_images;
pub mod task;
pub mod tensor_file;
pub mod tensorboard;
pub mod trainer;

pub use classify::Classify;
pub use driver::{run, run_task, run_until, Epochs, RunOutcome, TaskRun, TrainPlan};
pub use interrupt::Interrupted;
pub use recorder::Recorder;
pub use run_dir::{RunDir, RunKind};
pub use segment::{SegSource, Segment};
pub use slice_images::SliceImages;
pub use task::{BatchSource, Located, PhaseSummary, Step, Task};
pub use trainer::Trainer;
