//! Workers finish batches in any order; the consumer takes them in epoch
//! order, holding early ones until their turn.

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::slot_ring::Slot;
use super::worker::Done;
use super::LoaderError;

pub struct InOrder {
    rx: Receiver<Done>,
    early: BTreeMap<usize, Done>,
    /// Time spent blocked on workers.
    pub waited: Duration,
}

impl InOrder {
    pub fn new(rx: Receiver<Done>) -> Self {
        InOrder {
            rx,
            early: BTreeMap::new(),
            waited: Duration::ZERO,
        }
    }

    /// Batch `k`, waiting for it if it is not done yet.
    pub fn take(&mut self, k: usize) -> Result<Done, LoaderError> {
        loop {
            if let Some(done) = self.early.remove(&k) {
                return Ok(done);
            }
            let blocked = Instant::now();
            let received = self.rx.recv();
            self.waited += blocked.elapsed();
            let done = received.map_err(|_| LoaderError::WorkerLost)?;
            self.early.insert(done.batch, done);
        }
    }

    /// Every slot still out, once the job channel is closed: blocks until
    /// each worker has finished its job and gone.
    pub fn into_slots(self) -> impl Iterator<Item = Slot> {
        self.early
            .into_values()
            .chain(self.rx)
            .map(|done| done.slot)
    }
}
