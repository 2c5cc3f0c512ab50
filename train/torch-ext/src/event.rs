//! CUDA events: the host waits for one queued operation (say, a host→device
//! copy out of a pinned buffer) instead of the whole device
//! (`Cuda::synchronize`, the only wait tch offers), so the GPU keeps running
//! the work queued after it.

use std::ffi::c_void;
use std::ptr;

use tch::Tensor;

use crate::ffi::{self, check};
use crate::Error;

/// A `c10::Event` of one CUDA device.
pub struct CudaEvent {
    raw: *mut c_void,
}

// SAFETY: c10::Event may be recorded and waited on from any thread; the
// wrapper is only ever used through `&mut self` or `&self` waits.
unsafe impl Send for CudaEvent {}

impl CudaEvent {
    /// An event for CUDA device `index`; an error without CUDA or that device.
    pub fn new(index: usize) -> Result<Self, Error> {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is a live local the shim fills on success.
        check(unsafe { ffi::tex_event_new_cuda(index as i64, &mut raw) })?;
        Ok(CudaEvent { raw })
    }

    /// Marks the point reached by the device's current stream so far.
    pub fn record(&mut self) -> Result<(), Error> {
        // SAFETY: `raw` is the shim's event, alive until Drop.
        check(unsafe { ffi::tex_event_record(self.raw) })
    }

    /// `host` (pinned) copied to this event's device on a side stream of
    /// the device, then records the event there: [`CudaEvent::synchronize`]
    /// waits for the copy alone, and the device's current stream waits for
    /// it on the device (so what it queues next reads the copied values)
    /// while the copy overlaps what that stream is already running.
    pub fn copy_to_device(&mut self, host: &Tensor) -> Result<Tensor, Error> {
        let mut out = ptr::null_mut();
        // SAFETY: `raw` is the shim's event, alive until Drop; `host` is a
        // live tensor borrowed for the call; `out` is a fresh `at::Tensor*`
        // handed to `Tensor::from_ptr` once.
        unsafe {
            check(ffi::tex_event_copy_to_device(
                self.raw,
                host.as_ptr(),
                &mut out,
            ))?;
            Ok(Tensor::from_ptr(out))
        }
    }

    /// Blocks until the work queued before the last `record` has finished
    /// (at once if never recorded).
    pub fn synchronize(&self) -> Result<(), Error> {
        // SAFETY: as in `record`.
        check(unsafe { ffi::tex_event_synchronize(self.raw) })
    }
}

impl Drop for CudaEvent {
    fn drop(&mut self) {
        // SAFETY: created by tex_event_new_cuda, freed once.
        unsafe { ffi::tex_event_free(self.raw) }
    }
}
