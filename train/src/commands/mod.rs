//! One module per subcommand: each turns its parsed arguments into work
//! and output. `main.rs` only dispatches.

pub mod analyze;
pub mod bench;
pub mod compare;
pub mod doctor;
pub mod eval;
pub mod import_state;
pub mod predict;
pub mod score;
pub mod seg;
pub mod sweep;
pub mod train;

use anyhow::{Context, Result};

use crate::cli::ScoreArgs;
use crate::config::resolve::resolve;
use crate::data::split::Split;
use crate::inference::SavedModel;
use crate::run::best;

/// What `eval` and `predict` do before scoring: the shared limits, a
/// one-line exit naming the cache if it changes under the mapping, the
/// run's best checkpoint when there is one, then the model and the split.
fn open_scorer(score: &ScoreArgs, split: Split, tool: &str) -> Result<(SavedModel, Vec<u32>)> {
    let config = score.config();
    config.validate()?;
    shared::signals::exit_on_sigbus(tool, &score.cache).context("installing the SIGBUS handler")?;
    let checkpoint = best::prefer_best(&score.checkpoint, tool);
    SavedModel::open_on(&checkpoint, resolve(&config)?, split, tool)
}
