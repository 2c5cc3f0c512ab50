//! The cache loader as a [`BatchSource`]: the classifier's batches and the
//! segmentation task's (whose chunks are candidate-cache chunks too) come
//! through it alike.

use std::time::Duration;

use anyhow::Result;

use super::phase::PhaseKind;
use super::task::{BatchSource, Located};
use crate::data::loader::{Batch, Loader};

impl Located for Batch<'_> {
    fn index(&self) -> usize {
        self.index
    }

    fn start(&self) -> usize {
        self.start
    }

    fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }
}

impl BatchSource for Loader {
    type Batch<'a> = Batch<'a>;

    fn run_epoch(
        &mut self,
        _kind: PhaseKind,
        order: &[u32],
        consume: &mut dyn FnMut(Batch<'_>) -> Result<()>,
    ) -> Result<()> {
        Loader::run_epoch::<anyhow::Error>(self, order, consume)
    }

    fn last_wait(&self) -> Duration {
        Loader::last_wait(self)
    }
}
