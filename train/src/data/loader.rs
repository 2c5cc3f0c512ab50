//! Streams batches of cached crops to the device.
//!
//! Worker threads decode chunks (`CacheReader::read_chunk`: mmap → zstd →
//! the slot) straight into a ring of reusable int16 `[B,1,32,48,48]` host
//! buffers, so steady state allocates nothing per sample. On CUDA the
//! buffers are pinned and the host→device copy is asynchronous. Batches are
//! handed to the consumer in order while the workers fill the next ones.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::cache::{CacheError, CacheReader};
use tch::{Device, Kind, Tensor};
use torch_ext::CudaEvent;

/// A batch on the training device.
pub struct Batch {
    /// Position of the batch in the epoch.
    pub index: usize,
    /// Index of the batch's first sample in the epoch.
    pub start: usize,
    /// int16 HU `[n,1,32,48,48]`.
    pub images: Tensor,
    /// int64 class labels `[n]` (1 = nodule), from the cache index.
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

/// A host buffer's address, handed to exactly one worker at a time.
#[derive(Clone, Copy)]
struct SlotPtr(*mut i16);
// SAFETY: the main thread gives a slot to one worker per job and does not
// touch it until that worker reports the job done (see `Loader::run_epoch`).
unsafe impl Send for SlotPtr {}

struct Job {
    batch: usize,
    slot: usize,
    ptr: SlotPtr,
    /// Range in the epoch order.
    start: usize,
    end: usize,
}

struct Done {
    batch: usize,
    slot: usize,
    result: Result<(), CacheError>,
}

pub struct Loader {
    reader: Arc<CacheReader>,
    cfg: LoaderConfig,
    voxels: usize,
    shape: [i64; 3],
    /// Reusable host buffers; ring size = workers + 2 so two batches are
    /// ready or in transfer while every worker fills another. Allocated by
    /// the first epoch ([`Loader::fit_slots`]).
    slots: Vec<Tensor>,
    /// Samples each slot holds: `min(batch_size, largest epoch so far)`.
    slot_samples: usize,
    /// Time the last `run_epoch` spent blocked on workers: the share of an
    /// epoch the training loop starved for data.
    waited: Duration,
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
            slots: Vec::new(),
            slot_samples: 0,
            waited: Duration::ZERO,
        }
    }

    /// Makes the ring fit an epoch of `samples`: slots of
    /// `min(batch_size, samples)` and no more of them than there are
    /// batches, so a batch size far above the epoch allocates for the
    /// epoch, not for the flag. Grows (never shrinks) between epochs.
    fn fit_slots(&mut self, samples: usize) {
        let per_slot = self.cfg.batch_size.min(samples).max(1);
        let ring = (self.cfg.num_workers + 2).min(samples.div_ceil(per_slot));
        if per_slot <= self.slot_samples && ring <= self.slots.len() {
            return;
        }
        let per_slot = per_slot.max(self.slot_samples);
        let ring = ring.max(self.slots.len());
        let (shape, device) = (self.shape, self.cfg.device);
        self.slots = (0..ring)
            .map(|_| {
                let t = Tensor::zeros(
                    [per_slot as i64, 1, shape[0], shape[1], shape[2]],
                    (Kind::Int16, Device::Cpu),
                );
                if device.is_cuda() {
                    t.pin_memory(device)
                } else {
                    t
                }
            })
            .collect();
        self.slot_samples = per_slot;
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
        mut consume: impl FnMut(Batch) -> Result<(), E>,
    ) -> Result<(), E> {
        self.waited = Duration::ZERO;
        let b = self.cfg.batch_size;
        let batches = order.len().div_ceil(b);
        if batches == 0 {
            return Ok(());
        }
        self.fit_slots(order.len());
        let ring = self.slots.len();
        let ptrs: Vec<SlotPtr> = self
            .slots
            .iter()
            .map(|t| SlotPtr(t.data_ptr() as *mut i16))
            .collect();
        let labels_all: Vec<i64> = {
            let entries = self.reader.entries();
            order
                .iter()
                .map(|&i| entries.get(i as usize).map_or(0, |e| e.is_nodule as i64))
                .collect()
        };
        let reader = &*self.reader;
        let voxels = self.voxels;
        let device = self.cfg.device;
        let shape = self.shape;
        let slots = &self.slots;
        let waited = &mut self.waited;
        // One event per slot marks when its host→device copy has finished,
        // so reusing the slot waits for that copy alone, not for the whole
        // device (the training step queued after it keeps running).
        let mut copied: Vec<Option<CudaEvent>> = (0..ring)
            .map(|_| match device {
                Device::Cuda(i) => CudaEvent::new(i).ok(),
                _ => None,
            })
            .collect();

        std::thread::scope(|scope| {
            let (job_tx, job_rx) = mpsc::channel::<Job>();
            let job_rx = Arc::new(Mutex::new(job_rx));
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            for _ in 0..self.cfg.num_workers.min(batches) {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    let mut dec = reader.decoder();
                    loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let n = job.end - job.start;
                        // SAFETY: the slot holds min(batch_size, order.len())*voxels i16 and n is at most that;
                        // only this worker touches it until it sends `Done` (SlotPtr).
                        let buf = unsafe { std::slice::from_raw_parts_mut(job.ptr.0, n * voxels) };
                        let mut result = Ok(());
                        for (k, &i) in order[job.start..job.end].iter().enumerate() {
                            let out = &mut buf[k * voxels..(k + 1) * voxels];
                            if let Err(e) = reader.read_chunk(&mut dec, i as usize, out) {
                                result = Err(e);
                                break;
                            }
                        }
                        let done = Done {
                            batch: job.batch,
                            slot: job.slot,
                            result,
                        };
                        if done_tx.send(done).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_tx);

            let issue = |batch: usize, slot: usize| Job {
                batch,
                slot,
                ptr: ptrs[slot],
                start: batch * b,
                end: ((batch + 1) * b).min(order.len()),
            };
            for k in 0..ring.min(batches) {
                // A send fails only when every worker is gone; the receive below reports it.
                let _ = job_tx.send(issue(k, k));
            }
            let mut ready: BTreeMap<usize, Done> = BTreeMap::new();
            for k in 0..batches {
                let done = loop {
                    if let Some(d) = ready.remove(&k) {
                        break d;
                    }
                    let blocked = Instant::now();
                    let received = done_rx.recv();
                    *waited += blocked.elapsed();
                    match received {
                        Ok(d) => {
                            ready.insert(d.batch, d);
                        }
                        Err(_) => return Err(E::from(LoaderError::WorkerLost)),
                    }
                };
                done.result.map_err(|e| E::from(LoaderError::Cache(e)))?;
                let (start, end) = (k * b, ((k + 1) * b).min(order.len()));
                let n = (end - start) as i64;
                let host = slots[done.slot].narrow(0, 0, n);
                let images = if device.is_cuda() {
                    let images = host.to_device_(device, Kind::Int16, true, false);
                    if let Some(event) = &mut copied[done.slot] {
                        if event.record().is_err() {
                            copied[done.slot] = None;
                        }
                    }
                    images
                } else {
                    // The consumer finishes with the batch before the slot is reused,
                    // and on the CPU every op is synchronous: no copy needed.
                    host
                };
                // Non-blocking: a blocking copy would wait for the whole stream, once per
                // batch; from pageable memory the driver stages the bytes before returning.
                let labels = Tensor::from_slice(&labels_all[start..end]).to_device_(
                    device,
                    Kind::Int64,
                    true,
                    false,
                );
                debug_assert_eq!(images.size()[2..], shape);
                consume(Batch {
                    index: k,
                    start,
                    images,
                    labels,
                })?;
                if k + ring < batches {
                    if let Device::Cuda(i) = device {
                        // The queued copy out of this slot must finish before a
                        // worker overwrites it; without an event, wait for everything.
                        let waited_for_copy = copied[done.slot]
                            .as_ref()
                            .is_some_and(|event| event.synchronize().is_ok());
                        if !waited_for_copy {
                            tch::Cuda::synchronize(i as i64);
                        }
                    }
                    let _ = job_tx.send(issue(k + ring, done.slot));
                }
            }
            drop(job_tx);
            Ok(())
        })
    }
}
