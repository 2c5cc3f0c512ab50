//! A loader worker: takes a job (a slot and a range of the epoch order),
//! decodes those crops into the slot, and sends the slot back.

use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;

use shared::cache::{CacheError, CacheReader};

use super::slot_ring::Slot;

pub struct Job {
    pub batch: usize,
    pub slot: Slot,
    /// Range in the epoch order.
    pub range: Range<usize>,
}

pub struct Done {
    pub batch: usize,
    pub slot: Slot,
    pub result: Result<(), CacheError>,
}

/// Serves jobs until the job channel closes or the consumer stops listening.
pub fn work(
    reader: &CacheReader,
    order: &[u32],
    voxels: usize,
    jobs: &Mutex<Receiver<Job>>,
    done: Sender<Done>,
) {
    let mut dec = reader.decoder();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(Job {
            batch,
            mut slot,
            range,
        }) = job
        else {
            return;
        };
        let buf = slot.writable(range.len() * voxels);
        let result = order[range]
            .iter()
            .zip(buf.chunks_exact_mut(voxels))
            .try_for_each(|(&i, out)| reader.read_chunk(&mut dec, i as usize, out));
        if done
            .send(Done {
                batch,
                slot,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}
