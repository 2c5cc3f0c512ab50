//! Autocast (automatic mixed precision) per device type, as `torch.autocast`
//! drives it: matmul/conv-like ops run in the lower-precision dtype, numerically
//! sensitive ops in fp32, parameters stay fp32.
//!
//! libtorch keeps the enabled flag, dtype, nesting depth and cache switch per
//! thread, so they only affect ops issued from the thread that set them; the
//! cast cache itself is process-wide. Backward does not need autocast enabled:
//! backward ops follow the dtypes recorded in forward.

use std::ffi::c_int;
use std::marker::PhantomData;

use tch::{Device, Kind};

use crate::ffi::{self, check, kind_from_c, kind_to_c};
use crate::Error;

/// libtorch device types that have an autocast state; the values are
/// `c10::DeviceType`'s, so they go to the shim unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// Host CPU.
    Cpu = 0,
    /// NVIDIA (or ROCm, which libtorch also files as CUDA) GPUs.
    Cuda = 1,
    /// Vulkan; libtorch has no autocast for it, so every call errs.
    Vulkan = 10,
    /// Intel GPUs.
    Xpu = 12,
    /// Apple GPUs.
    Mps = 13,
}

impl From<Device> for DeviceType {
    fn from(device: Device) -> Self {
        match device {
            Device::Cpu => DeviceType::Cpu,
            Device::Cuda(_) => DeviceType::Cuda,
            Device::Mps => DeviceType::Mps,
            Device::Vulkan => DeviceType::Vulkan,
        }
    }
}

impl DeviceType {
    fn c(self) -> c_int {
        self as c_int
    }
}

/// Turns autocast on or off for `device` on the calling thread.
pub fn set_enabled(device: DeviceType, enabled: bool) -> Result<(), Error> {
    // SAFETY: plain value arguments; the shim validates the device type.
    check(unsafe { ffi::tex_autocast_set_enabled(device.c(), enabled) })
}

/// Whether autocast is on for `device` on the calling thread.
pub fn is_enabled(device: DeviceType) -> Result<bool, Error> {
    let mut out = false;
    // SAFETY: `out` is a live local the shim writes once.
    check(unsafe { ffi::tex_autocast_is_enabled(device.c(), &mut out) })?;
    Ok(out)
}

/// Sets the lower-precision dtype autocast casts to on `device`
/// ([`Kind::BFloat16`] or [`Kind::Half`]).
pub fn set_dtype(device: DeviceType, kind: Kind) -> Result<(), Error> {
    if !matches!(kind, Kind::BFloat16 | Kind::Half) {
        return Err(Error::AutocastDtype(kind));
    }
    // SAFETY: plain value arguments; the shim validates the device type.
    check(unsafe { ffi::tex_autocast_set_dtype(device.c(), kind_to_c(kind)) })
}

/// The lower-precision dtype autocast uses on `device` (libtorch's default
/// is BFloat16 on CPU, Half on CUDA).
pub fn get_dtype(device: DeviceType) -> Result<Kind, Error> {
    let mut out: c_int = 0;
    // SAFETY: `out` is a live local the shim writes once.
    check(unsafe { ffi::tex_autocast_get_dtype(device.c(), &mut out) })?;
    kind_from_c(out)
}

/// Drops the casted copies of fp32 leaf tensors (parameters) autocast keeps
/// so each weight is cast once per region, not once per use. Stale copies
/// would hide updated weights, hence the clear when the outermost region ends.
/// The cache is shared by all threads.
pub fn clear_cache() -> Result<(), Error> {
    // SAFETY: no arguments.
    check(unsafe { ffi::tex_autocast_clear_cache() })
}

/// Whether autocast caches casted parameters (on by default).
pub fn is_cache_enabled() -> Result<bool, Error> {
    let mut out = false;
    // SAFETY: `out` is a live local the shim writes once.
    check(unsafe { ffi::tex_autocast_is_cache_enabled(&mut out) })?;
    Ok(out)
}

/// Turns the cast cache of [`clear_cache`] on or off for the calling thread.
pub fn set_cache_enabled(enabled: bool) -> Result<(), Error> {
    // SAFETY: plain value argument.
    check(unsafe { ffi::tex_autocast_set_cache_enabled(enabled) })
}

fn increment_nesting() -> Result<i32, Error> {
    let mut out: c_int = 0;
    // SAFETY: `out` is a live local the shim writes once.
    check(unsafe { ffi::tex_autocast_increment_nesting(&mut out) })?;
    Ok(out)
}

fn decrement_nesting() -> Result<i32, Error> {
    let mut out: c_int = 0;
    // SAFETY: `out` is a live local the shim writes once.
    check(unsafe { ffi::tex_autocast_decrement_nesting(&mut out) })?;
    Ok(out)
}

/// An autocast region, the RAII form of `with torch.autocast(...)`: creating
/// it saves the thread's autocast state for the device type and enables (or
/// disables) autocast; dropping it restores that state and, when it closes
/// the outermost region, clears the cast cache.
///
/// Guards nest and must be dropped in reverse order of creation (scoping
/// does that). The state is per thread, so the guard is neither `Send` nor
/// `Sync`.
#[must_use = "autocast is only active while the guard lives"]
#[derive(Debug)]
pub struct AutocastGuard {
    device: DeviceType,
    prev_enabled: bool,
    prev_kind: Kind,
    prev_cache: bool,
    _thread_bound: PhantomData<*const ()>,
}

impl AutocastGuard {
    /// Enables autocast to `kind` ([`Kind::BFloat16`] or [`Kind::Half`]) for
    /// `device`'s type until the guard drops.
    pub fn new(device: Device, kind: Kind) -> Result<Self, Error> {
        Self::enter(device.into(), Some(kind), true)
    }

    /// Disables autocast for `device`'s type until the guard drops, e.g. to
    /// run a loss in fp32 inside an autocast region.
    pub fn disabled(device: Device) -> Result<Self, Error> {
        Self::enter(device.into(), None, false)
    }

    fn enter(device: DeviceType, kind: Option<Kind>, enabled: bool) -> Result<Self, Error> {
        if let Some(kind) = kind {
            if !matches!(kind, Kind::BFloat16 | Kind::Half) {
                return Err(Error::AutocastDtype(kind));
            }
        }
        let guard = AutocastGuard {
            device,
            prev_enabled: is_enabled(device)?,
            prev_kind: get_dtype(device)?,
            prev_cache: is_cache_enabled()?,
            _thread_bound: PhantomData,
        };
        // Nothing has changed yet, so an error above needs no undo; from here
        // on only validated arguments are passed, which libtorch cannot refuse.
        set_enabled(device, enabled)?;
        if let Some(kind) = kind {
            set_dtype(device, kind)?;
        }
        increment_nesting()?;
        Ok(guard)
    }

    /// The device type this guard governs.
    pub fn device_type(&self) -> DeviceType {
        self.device
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // Errors are impossible here (the device type and dtypes were accepted
        // on entry) and a drop cannot report them, so they are ignored.
        if let Ok(0) = decrement_nesting() {
            let _ = clear_cache();
        }
        let _ = set_enabled(self.device, self.prev_enabled);
        let _ = set_dtype(self.device, self.prev_kind);
        let _ = set_cache_enabled(self.prev_cache);
    }
}
