//! Host-side loops on libtorch's own thread team.
//!
//! Between libtorch's ops its OpenMP threads spin for a while before they
//! sleep; work run on another pool (rayon) in that window fights them for
//! the cores: on the 2-core dev VM the augmentation's warp took ~60% longer
//! inside a training step than alone. [`for_each_index`] runs on the same
//! team instead ([`torch_ext::parallel_for`]), so the work takes the cores
//! those threads would have spun on.

use std::sync::{Mutex, MutexGuard};

/// Runs `task(i)` for every `i` in `0..n` on libtorch's intra-op threads
/// (split evenly between them, as libtorch splits its own loops).
pub fn for_each_index(n: usize, task: impl Fn(usize) + Sync) {
    let each = |chunk: std::ops::Range<usize>| chunk.for_each(&task);
    // libtorch throws only for a negative grain, which a usize cannot be;
    // rerunning tasks after a failure could apply one twice.
    torch_ext::parallel_for(0..n, 1, each).expect("at::parallel_for over a valid range");
}

/// Pieces (say mutable chunks of one buffer) lent to the tasks of
/// [`for_each_index`], each task taking its own: the locks are never
/// contended and cost a few hundred nanoseconds a batch.
pub struct Lent<T>(Vec<Mutex<T>>);

impl<T> Lent<T> {
    pub fn new(pieces: impl IntoIterator<Item = T>) -> Self {
        Lent(pieces.into_iter().map(Mutex::new).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Piece `i`, for the task that owns it.
    pub fn take(&self, i: usize) -> MutexGuard<'_, T> {
        self.0[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pieces back, in order.
    pub fn into_vec(self) -> Vec<T> {
        self.0
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}
