//! Streams batches of cached crops to the device.
//!
//! Worker threads decode chunks (`CacheReader::read_chunk`: mmap → zstd →
//! the slot) straight into a ring of reusable int16 `[B,1,32,48,48]` host
//! buffers, so steady state allocates nothing per sample. On CUDA the
//! buffers are pinned and the host→device copy is asynchronous. Batches are
//! handed to the consumer in order while the workers fill the next ones.

use std::ops::Range;
use std::sync::mpsc::{self, SendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::cache::{CacheError, CacheReader};
use tch::{Device, Kind, Tensor};

mod in_order;
mod slot_ring;
mod worker;

use in_order::InOrder;
pub use slot_ring::SlotView;
use slot_ring::{Slot, SlotRing};
use worker::{Done, Job};

/// A batch on the training device, valid for the consumer's call: on the
/// CPU its images are the slot a worker fills next.
pub struct Batch<'slot> {
    /// Position of the batch in the epoch.
    pub index: usize,
    /// Index of the batch's first sample in the epoch.
    pub start: usize,
    /// int16 HU `[n,1,32,48,48]`.
    pub images: SlotView<'slot>,
    /// int64 class labels `[n]`: 1 = nodule, from the cache index, or the
    /// loader's own labels ([`Loader::with_targets`]).
    pub labels: Tensor,
}

#[derive(Clone, Copy, Debug)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub num_workers: usize,
    pub device: Device,
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("loader worker stopped unexpectedly")]
    WorkerLost,
}

pub struct Loader {
    reader: Arc<CacheReader>,
    cfg: LoaderConfig,
    voxels: usize,
    shape: [i64; 3],
    /// Reusable host buffers; ring size = workers + 2 so two batches are
    /// ready or in transfer while every worker fills another. Allocated by
    /// the first epoch ([`Loader::fit_slots`]), kept with their copy events
    /// across epochs.
    ring: SlotRing,
    /// Time the last `run_epoch` spent blocked on workers: the share of an
    /// epoch the training loop starved for data.
    waited: Duration,
    /// The label of each cache index when it is not the index's
    /// `is_nodule` (chapter 14: malignant or not).
    targets: Option<Vec<bool>>,
}

impl Loader {
    pub fn new(reader: Arc<CacheReader>, cfg: LoaderConfig) -> Self {
        let [d, h, w] = reader.manifest().crop_shape;
        let shape = [d as i64, h as i64, w as i64];
        let voxels = d * h * w;
        let cfg = LoaderConfig {
            batch_size: cfg.batch_size.max(1),
            num_workers: cfg.num_workers.max(1),
            ..cfg
        };
        Loader {
            reader,
            cfg,
            voxels,
            shape,
            ring: SlotRing::new(shape, cfg.device),
            waited: Duration::ZERO,
            targets: None,
        }
    }

    /// Labels batches with `targets[cache index]` instead of the cache's
    /// `is_nodule` (an index past `targets` is labelled 0).
    pub fn with_targets(mut self, targets: Vec<bool>) -> Self {
        self.targets = Some(targets);
        self
    }

    /// Makes the ring fit an epoch of `samples`: slots of
    /// `min(batch_size, samples)` and no more of them than there are
    /// batches, so a batch size far above the epoch allocates for the
    /// epoch, not for the flag. Grows (never shrinks) between epochs.
    fn fit_slots(&mut self, samples: usize) {
        let per_slot = self.cfg.batch_size.min(samples).max(1);
        let ring = (self.cfg.num_workers + 2).min(samples.div_ceil(per_slot));
        self.ring.fit(ring, per_slot);
    }

    fn labels(&self, order: &[u32]) -> Vec<i64> {
        if let Some(targets) = &self.targets {
            return order
                .iter()
                .map(|&i| targets.get(i as usize).map_or(0, |&t| t as i64))
                .collect();
        }
        let entries = self.reader.entries();
        order
            .iter()
            .map(|&i| entries.get(i as usize).map_or(0, |e| e.is_nodule as i64))
            .collect()
    }

    /// How long the last [`Loader::run_epoch`] waited for batches that were
    /// not ready yet (first batch included).
    pub fn last_wait(&self) -> Duration {
        self.waited
    }

    pub fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    /// Loads `order` (cache indices) in batches and calls `consume` on each,
    /// in order. Stops at the first error, from the cache or from `consume`.
    pub fn run_epoch<E: From<LoaderError>>(
        &mut self,
        order: &[u32],
        mut consume: impl FnMut(Batch<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.waited = Duration::ZERO;
        let b = self.cfg.batch_size;
        let batches = order.len().div_ceil(b);
        if batches == 0 {
            return Ok(());
        }
        self.fit_slots(order.len());
        let labels = self.labels(order);
        let (reader, voxels) = (&*self.reader, self.voxels);
        let target = Target {
            device: self.cfg.device,
            shape: self.shape,
            labels: &labels,
        };
        let range = |k: usize| k * b..((k + 1) * b).min(order.len());
        let mut home = self.ring.take();
        let ring = home.len();
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (job_rx, (done_tx, done_rx)) = (Mutex::new(job_rx), mpsc::channel());
        let mut arrivals = InOrder::new(done_rx);
        let workers = self.cfg.num_workers.min(batches);
        let result = std::thread::scope(|scope| {
            for _ in 0..workers {
                let (jobs, done) = (&job_rx, done_tx.clone());
                scope.spawn(move || worker::work(reader, order, voxels, jobs, done));
            }
            drop(done_tx);
            let issue = |batch: usize, slot: Slot, home: &mut Vec<Slot>| {
                let range = range(batch);
                // Fails only when every worker is gone; `take` reports it.
                if let Err(SendError(job)) = job_tx.send(Job { batch, slot, range }) {
                    home.push(job.slot);
                }
            };
            let first: Vec<Slot> = home.drain(..ring.min(batches)).collect();
            for (k, slot) in first.into_iter().enumerate() {
                issue(k, slot, &mut home);
            }
            let result = (0..batches).try_for_each(|k| {
                let Done {
                    mut slot, result, ..
                } = arrivals.take(k)?;
                let delivered = result
                    .map_err(|e| E::from(LoaderError::Cache(e)))
                    .and_then(|()| target.deliver(&mut slot, k, range(k), &mut consume));
                // The batch, and with it any view of the slot, is gone.
                match delivered {
                    Ok(()) if k + ring < batches => issue(k + ring, slot, &mut home),
                    other => {
                        home.push(slot);
                        other?;
                    }
                }
                Ok(())
            });
            drop(job_tx);
            let waited = arrivals.waited;
            home.extend(arrivals.into_slots());
            (result, waited)
        });
        let (result, waited) = result;
        self.waited = waited;
        self.ring.put_back(home);
        result
    }
}

/// Where a slot's samples go: the device, with their labels.
struct Target<'a> {
    device: Device,
    shape: [i64; 3],
    labels: &'a [i64],
}

impl Target<'_> {
    /// Hands samples `range` of the epoch, filled into `slot`, to `consume`
    /// as batch `index`.
    fn deliver<E>(
        &self,
        slot: &mut Slot,
        index: usize,
        range: Range<usize>,
        consume: &mut impl FnMut(Batch<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let images = slot.view(range.len());
        debug_assert_eq!(images.size()[2..], self.shape);
        // Non-blocking: a blocking copy would wait for the whole stream, once per
        // batch; from pageable memory the driver stages the bytes before returning.
        let labels = Tensor::from_slice(&self.labels[range.clone()]).to_device_(
            self.device,
            Kind::Int64,
            true,
            false,
        );
        consume(Batch {
            index,
            start: range.start,
            images,
            labels,
        })
    }
}
