//! The current CUDA device. libtorch creates a device's context lazily on
//! the current device, which is 0 until someone says otherwise: a run on
//! `cuda:N` makes N current once so nothing lands on GPU 0.

use crate::ffi::{self, check};
use crate::Error;

/// Makes CUDA device `index` current for the calling thread; an error
/// without CUDA or that device.
pub fn set_cuda_device(index: usize) -> Result<(), Error> {
    // SAFETY: plain value argument.
    check(unsafe { ffi::tex_cuda_set_device(index as i64) })
}

/// The calling thread's current CUDA device; an error without CUDA.
pub fn cuda_current_device() -> Result<usize, Error> {
    let mut out = 0i64;
    // SAFETY: `out` is a live local the shim fills.
    check(unsafe { ffi::tex_cuda_current_device(&mut out) })?;
    Ok(out.max(0) as usize)
}
