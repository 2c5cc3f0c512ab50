//! Host buffers for asynchronous host→device copies: pinning without the
//! device argument libtorch 2.11 deprecates (tch's `pin_memory(device)` warns
//! on every call), and a storage sharing count so an owner can prove nobody
//! else holds a view before overwriting a buffer.

use std::ptr;

use tch::Tensor;

use crate::ffi::{self, check};
use crate::Error;

/// `t.pin_memory()`: a page-locked copy of CPU tensor `t`; an error where
/// libtorch has no CUDA (nothing to pin for).
pub fn pin_memory(t: &Tensor) -> Result<Tensor, Error> {
    let mut out = ptr::null_mut();
    // SAFETY: `t` is a live tch tensor borrowed for the call; `out` receives
    // a `new at::Tensor` or stays NULL on error.
    check(unsafe { ffi::tex_pin_memory(t.as_ptr(), &mut out) })?;
    // SAFETY: success means `out` is a fresh heap `at::Tensor` owned by no
    // one else, exactly what tch's Drop frees.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Whether `t` is the only handle to its storage: no view, shallow clone
/// or autograd record of it is alive anywhere.
pub fn storage_is_unshared(t: &Tensor) -> Result<bool, Error> {
    let mut out = 0i64;
    // SAFETY: `t` is a valid borrowed `at::Tensor*`; `out` is a live local.
    check(unsafe { ffi::tex_storage_use_count(t.as_ptr(), &mut out) })?;
    // The count is exact only when it is 1: a view also holds `t` as its base.
    Ok(out == 1)
}
