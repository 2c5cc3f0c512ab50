//! Stopping a run between two batches (Ctrl-C) without losing finished epochs.

use std::path::PathBuf;

/// The error a run ends with when a stop was requested: between two
/// batches, after the last finished epoch's checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("interrupted during epoch {epoch}")]
pub struct Interrupted {
    pub epoch: usize,
    /// Last finished epoch (0: none, nothing saved) and where it is saved.
    pub saved_epoch: usize,
    pub run_dir: PathBuf,
    pub epochs: usize,
}

impl Interrupted {
    /// What to tell the user: what is kept and how to go on.
    pub fn advice(&self) -> String {
        if self.saved_epoch == 0 {
            format!(
                "train: interrupted during epoch {}; no epoch had finished, so nothing was saved",
                self.epoch
            )
        } else {
            format!(
                "train: interrupted during epoch {}; the checkpoint of epoch {} is in {}\n\
                 train: to go on: train --resume {} --epochs {}",
                self.epoch,
                self.saved_epoch,
                self.run_dir.display(),
                self.run_dir.display(),
                self.epochs
            )
        }
    }
}

/// Raised inside a phase when the stop flag is seen; the driver turns it
/// into [`Interrupted`], which knows what was saved.
#[derive(Debug, thiserror::Error)]
#[error("stop requested")]
pub struct StopRequested;
