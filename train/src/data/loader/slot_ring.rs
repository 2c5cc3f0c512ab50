//! The loader's reusable host buffers. A [`Slot`] is moved, whole, to the
//! worker that fills it and back to the consumer that reads it, so at any
//! time exactly one thread owns it; its contents leave it either as a device
//! copy (CUDA, tracked by the slot's own event) or as a CPU view that borrows
//! the slot ([`SlotView`]) and so cannot outlive the consumer's call.

use std::marker::PhantomData;
use std::ops::Deref;

use tch::{Device, Kind, Tensor};
use torch_ext::CudaEvent;

/// One int16 `[samples,1,D,H,W]` host buffer (pinned on CUDA) and the event
/// of the last device copy out of it.
pub struct Slot {
    host: Tensor,
    device: Device,
    /// Recorded after each copy to the device; `None` on the CPU, or where
    /// the event could not be made (then reuse waits for the whole device).
    copied: Option<CudaEvent>,
    /// A copy out of `host` may still be running.
    in_flight: bool,
}

impl Slot {
    fn new(samples: usize, shape: [i64; 3], device: Device) -> Self {
        let host = host_buffer(samples, shape, device);
        let copied = match device {
            Device::Cuda(i) => CudaEvent::new(i).ok(),
            _ => None,
        };
        Slot {
            host,
            device,
            copied,
            in_flight: false,
        }
    }

    /// The first `values` int16 of the buffer, to decode into. Waits for the
    /// last device copy out of the slot first, and gives the slot a fresh
    /// buffer if anything still shares this one (a consumer that kept a
    /// shallow clone of a CPU batch keeps its data; the slot moves on).
    pub fn writable(&mut self, values: usize) -> &mut [i16] {
        self.wait_for_copy();
        if !torch_ext::storage_is_unshared(&self.host).unwrap_or(false) {
            let [_, _, d, h, w] = self.host.size()[..] else {
                unreachable!("slot buffers are 5-D")
            };
            let samples = self.host.size()[0] as usize;
            self.host = host_buffer(samples, [d, h, w], self.device);
        }
        let len = self.host.numel();
        assert!(values <= len, "{values} values into a slot of {len}");
        // SAFETY: `host` is a contiguous int16 CPU tensor of `len` values
        // owned by this slot alone (checked just above; views of it are only
        // made through `&self` in `view`, which this `&mut self` excludes),
        // no device copy reads it any more (waited above), and the slice
        // borrows `self` mutably, so nothing else can reach the memory.
        unsafe { std::slice::from_raw_parts_mut(self.host.data_ptr() as *mut i16, values) }
    }

    /// The first `n` samples for the consumer: an asynchronous device copy
    /// on CUDA (the slot's event marks its end), a view of the buffer on the
    /// CPU, where every op is synchronous and the view borrows the slot.
    pub fn view(&mut self, n: usize) -> SlotView<'_> {
        let host = self.host.narrow(0, 0, n as i64);
        let tensor = match self.device {
            Device::Cpu => host,
            device => {
                self.in_flight = true;
                self.copy_to(device, &host)
            }
        };
        SlotView {
            tensor,
            _slot: PhantomData,
        }
    }

    /// `host` on `device`: on a side stream where the slot has an event
    /// (the copy overlaps the step running on the compute stream, which
    /// waits for it on the device), else on the compute stream.
    fn copy_to(&mut self, device: Device, host: &Tensor) -> Tensor {
        if let Some(event) = &mut self.copied {
            match event.copy_to_device(host) {
                Ok(images) => return images,
                // Then the slot waits for the whole device before reuse.
                Err(_) => self.copied = None,
            }
        }
        host.to_device_(device, Kind::Int16, true, false)
    }

    /// Returns once no device copy reads the buffer any more.
    fn wait_for_copy(&mut self) {
        if !std::mem::take(&mut self.in_flight) {
            return;
        }
        let waited = self
            .copied
            .as_ref()
            .is_some_and(|e| e.synchronize().is_ok());
        if let (false, Device::Cuda(i)) = (waited, self.device) {
            tch::Cuda::synchronize(i as i64);
        }
    }
}

fn host_buffer(samples: usize, [d, h, w]: [i64; 3], device: Device) -> Tensor {
    let t = Tensor::zeros([samples as i64, 1, d, h, w], (Kind::Int16, Device::Cpu));
    if device.is_cuda() {
        // Unpinned, the copy is merely synchronous: slower, still correct.
        torch_ext::pin_memory(&t).unwrap_or(t)
    } else {
        t
    }
}

/// A batch's images, tied to the slot they came from: on the CPU they are
/// that slot's memory, which the next fill overwrites, so the borrow keeps
/// them inside the consumer's call. Dereferences to the tensor. (A
/// `shallow_clone` escapes the borrow; [`Slot::writable`] notices and leaves
/// the clone its data.)
pub struct SlotView<'slot> {
    tensor: Tensor,
    _slot: PhantomData<&'slot Slot>,
}

impl Deref for SlotView<'_> {
    type Target = Tensor;

    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

/// The loader's slots, kept across epochs with their events.
pub struct SlotRing {
    slots: Vec<Slot>,
    /// Samples each slot holds.
    samples: usize,
    shape: [i64; 3],
    device: Device,
}

impl SlotRing {
    pub fn new(shape: [i64; 3], device: Device) -> Self {
        SlotRing {
            slots: Vec::new(),
            samples: 0,
            shape,
            device,
        }
    }

    /// Makes the ring hold at least `count` slots of at least `samples`
    /// samples each. Grows (never shrinks); a grown ring first waits for
    /// the copies out of the slots it replaces.
    pub fn fit(&mut self, count: usize, samples: usize) {
        if samples <= self.samples && count <= self.slots.len() {
            return;
        }
        for slot in &mut self.slots {
            slot.wait_for_copy();
        }
        self.samples = samples.max(self.samples);
        let count = count.max(self.slots.len());
        self.slots = (0..count)
            .map(|_| Slot::new(self.samples, self.shape, self.device))
            .collect();
    }

    /// Lends every slot out for an epoch; [`SlotRing::put_back`] returns them.
    pub fn take(&mut self) -> Vec<Slot> {
        std::mem::take(&mut self.slots)
    }

    /// Slots lost to a failed epoch are made again by the next [`SlotRing::fit`].
    pub fn put_back(&mut self, slots: impl IntoIterator<Item = Slot>) {
        self.slots.extend(slots);
    }
}
