//! Memory formats (stride orders) tch cannot request. Channels-last-3d
//! (NDHWC strides on an NCDHW tensor) is what oneDNN's fast 3-D convolutions
//! work in; feeding them NCDHW costs a reorder per op.

use std::ffi::c_int;
use std::ptr;

use tch::{nn::VarStore, Tensor};

use crate::ffi::{self, check};
use crate::Error;

/// `c10::MemoryFormat`, numbered as libtorch numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoryFormat {
    /// Row-major (NCHW / NCDHW).
    Contiguous = 0,
    /// Keep the input's layout (only meaningful as a request).
    Preserve = 1,
    /// NHWC strides on a 4-D tensor.
    ChannelsLast = 2,
    /// NDHWC strides on a 5-D tensor.
    ChannelsLast3d = 3,
}

impl MemoryFormat {
    fn from_c(v: c_int) -> Result<Self, Error> {
        Ok(match v {
            0 => MemoryFormat::Contiguous,
            1 => MemoryFormat::Preserve,
            2 => MemoryFormat::ChannelsLast,
            3 => MemoryFormat::ChannelsLast3d,
            other => return Err(Error::UnknownMemoryFormat(other)),
        })
    }
}

/// `t.contiguous(memory_format)`: `t` itself (shared storage) when it
/// already has that layout, else a copy. Autograd-aware like any op.
pub fn contiguous_with(t: &Tensor, format: MemoryFormat) -> Result<Tensor, Error> {
    let mut out = ptr::null_mut();
    // SAFETY: `t` is a live tch tensor, i.e. a valid `at::Tensor*` borrowed
    // for the call; `out` receives a `new at::Tensor` or stays NULL on error.
    check(unsafe { ffi::tex_contiguous(t.as_ptr(), format as c_int, &mut out) })?;
    // SAFETY: success means `out` is a fresh heap `at::Tensor` that nothing
    // else owns, exactly what tch's Drop frees.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// `t.to(memory_format=format)`: `t` itself when its strides are already
/// those of `format`, else a copy with them. Unlike [`contiguous_with`] it
/// restrides tensors with a size-1 dimension, which both layouts accept
/// but kernels read by their strides (see [`var_store_to_channels_last_3d`]).
pub fn restride(t: &Tensor, format: MemoryFormat) -> Result<Tensor, Error> {
    let mut out = ptr::null_mut();
    // SAFETY: as in `contiguous_with`.
    check(unsafe { ffi::tex_restride(t.as_ptr(), format as c_int, &mut out) })?;
    // SAFETY: as in `contiguous_with`.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// `t.is_contiguous(memory_format)`.
pub fn is_contiguous_with(t: &Tensor, format: MemoryFormat) -> Result<bool, Error> {
    let mut out = false;
    // SAFETY: `t` is a valid borrowed `at::Tensor*`; `out` is a live local.
    check(unsafe { ffi::tex_is_contiguous(t.as_ptr(), format as c_int, &mut out) })?;
    Ok(out)
}

/// The layout libtorch infers from `t`'s strides, the one its kernels pick
/// for their outputs; handy to see where a model falls back to NCDHW.
pub fn suggest_memory_format(t: &Tensor) -> Result<MemoryFormat, Error> {
    let mut out: c_int = 0;
    // SAFETY: `t` is a valid borrowed `at::Tensor*`; `out` is a live local.
    check(unsafe { ffi::tex_suggest_memory_format(t.as_ptr(), &mut out) })?;
    MemoryFormat::from_c(out)
}

/// `t.contiguous(memory_format=torch.channels_last_3d)`; errs unless `t` is 5-D.
pub fn contiguous_channels_last_3d(t: &Tensor) -> Result<Tensor, Error> {
    let dim = t.dim();
    if dim != 5 {
        return Err(Error::NotFiveD(dim));
    }
    contiguous_with(t, MemoryFormat::ChannelsLast3d)
}

/// Whether `t` is laid out channels-last-3d (always false unless 5-D).
pub fn is_channels_last_3d(t: &Tensor) -> bool {
    t.defined() && is_contiguous_with(t, MemoryFormat::ChannelsLast3d).unwrap_or(false)
}

/// `t.contiguous(memory_format=torch.channels_last)`; errs unless `t` is 4-D.
/// The 2-D U-Net's layout: oneDNN's CPU 2-D convolutions run NHWC natively.
pub fn contiguous_channels_last(t: &Tensor) -> Result<Tensor, Error> {
    let dim = t.dim();
    if dim != 4 {
        return Err(Error::NotFourD(dim));
    }
    contiguous_with(t, MemoryFormat::ChannelsLast)
}

/// Whether `t` is laid out channels-last (always false unless 4-D).
pub fn is_channels_last(t: &Tensor) -> bool {
    t.defined() && is_contiguous_with(t, MemoryFormat::ChannelsLast).unwrap_or(false)
}

/// `model.to(memory_format=torch.channels_last_3d)` for a VarStore: every 5-D
/// variable (conv weights) gets channels-last-3d strides in place, keeping
/// its identity, name and `requires_grad`, so optimizers built on it stay
/// valid. An existing gradient is converted too, since accumulation keeps the
/// gradient's layout. Returns how many variables were converted.
///
/// Restrided, not made `contiguous`: the first conv's `[8,1,3,3,3]` weight
/// passes `is_contiguous(channels_last_3d)` as it is, yet libtorch picks a
/// convolution's layout from the weight's strides, so that layer (the
/// largest) stayed contiguous and every later layer converted back: 16% of
/// the bf16 step went to strided ReLU backward and layout copies.
pub fn var_store_to_channels_last_3d(vs: &VarStore) -> Result<usize, Error> {
    var_store_to(vs, MemoryFormat::ChannelsLast3d)
}

/// [`var_store_to_channels_last_3d`] for 2-D models: every 4-D variable
/// (conv and transposed-conv weights) gets channels-last strides, as
/// `model.to(memory_format=torch.channels_last)` does.
pub fn var_store_to_channels_last(vs: &VarStore) -> Result<usize, Error> {
    var_store_to(vs, MemoryFormat::ChannelsLast)
}

/// Restrides, in place, every variable of `format`'s rank (4-D for
/// channels-last, 5-D for channels-last-3d; other formats change nothing).
fn var_store_to(vs: &VarStore, format: MemoryFormat) -> Result<usize, Error> {
    let rank = match format {
        MemoryFormat::ChannelsLast => 4,
        MemoryFormat::ChannelsLast3d => 5,
        MemoryFormat::Contiguous | MemoryFormat::Preserve => return Ok(0),
    };
    let _no_grad = tch::no_grad_guard();
    let mut converted = 0;
    // `variables()` hands out shallow clones that share each variable's
    // TensorImpl, and set_data swaps the impl's storage, so the store sees it.
    for (_, mut var) in vs.variables() {
        if var.dim() != rank {
            continue;
        }
        let data = restride(&var.detach(), format)?;
        if data.stride() == var.stride() {
            continue;
        }
        var.f_set_data(&data)
            .map_err(|e| Error::Torch(e.to_string()))?;
        let mut grad = var.grad();
        if grad.defined() && grad.dim() == rank {
            let g = restride(&grad, format)?;
            grad.f_set_data(&g)
                .map_err(|e| Error::Torch(e.to_string()))?;
        }
        converted += 1;
    }
    Ok(converted)
}
