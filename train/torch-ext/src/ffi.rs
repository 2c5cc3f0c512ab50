//! Declarations of `csrc/torch_ext.h` and the conversions every wrapper needs.

use std::ffi::{c_char, c_int, c_void, CStr};

use tch::Kind;
use torch_sys::C_tensor;

use crate::Error;

extern "C" {
    pub fn tex_free_error(err: *mut c_char);

    pub fn tex_autocast_set_enabled(device_type: c_int, enabled: bool) -> *mut c_char;
    pub fn tex_autocast_is_enabled(device_type: c_int, out: *mut bool) -> *mut c_char;
    pub fn tex_autocast_set_dtype(device_type: c_int, scalar_type: c_int) -> *mut c_char;
    pub fn tex_autocast_get_dtype(device_type: c_int, out: *mut c_int) -> *mut c_char;
    pub fn tex_autocast_clear_cache() -> *mut c_char;
    pub fn tex_autocast_increment_nesting(out: *mut c_int) -> *mut c_char;
    pub fn tex_autocast_decrement_nesting(out: *mut c_int) -> *mut c_char;
    pub fn tex_autocast_set_cache_enabled(enabled: bool) -> *mut c_char;
    pub fn tex_autocast_is_cache_enabled(out: *mut bool) -> *mut c_char;

    pub fn tex_contiguous(
        t: *const C_tensor,
        memory_format: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    pub fn tex_is_contiguous(
        t: *const C_tensor,
        memory_format: c_int,
        out: *mut bool,
    ) -> *mut c_char;
    pub fn tex_restride(
        t: *const C_tensor,
        memory_format: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    pub fn tex_suggest_memory_format(t: *const C_tensor, out: *mut c_int) -> *mut c_char;

    pub fn tex_event_new_cuda(device_index: i64, out: *mut *mut c_void) -> *mut c_char;
    pub fn tex_event_record(e: *mut c_void) -> *mut c_char;
    pub fn tex_event_synchronize(e: *mut c_void) -> *mut c_char;
    pub fn tex_event_free(e: *mut c_void);
    pub fn tex_event_copy_to_device(
        e: *mut c_void,
        src: *const C_tensor,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;

    pub fn tex_pin_memory(t: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    pub fn tex_storage_use_count(t: *const C_tensor, out: *mut i64) -> *mut c_char;
    pub fn tex_cuda_set_device(device_index: i64) -> *mut c_char;
    pub fn tex_cuda_current_device(out: *mut i64) -> *mut c_char;
    pub fn tex_amp_non_finite_check_and_unscale(
        grads: *const *const C_tensor,
        n: i64,
        found_inf: *mut C_tensor,
        inv_scale: *const C_tensor,
    ) -> *mut c_char;

    #[allow(clippy::too_many_arguments)]
    pub fn tex_fused_adam(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        state_steps: *const *const C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled_weight_decay: bool,
        found_inf: *const C_tensor,
    ) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    pub fn tex_fused_sgd(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        bufs: *const *const C_tensor,
        n: i64,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
        is_first_step: bool,
        found_inf: *const C_tensor,
    ) -> *mut c_char;

    pub fn tex_cpu_feature(name: *const c_char, out: *mut c_int) -> *mut c_char;
    pub fn tex_cuda_supports_bf16(device_index: i64, out: *mut bool) -> *mut c_char;

    #[allow(clippy::too_many_arguments)]
    pub fn tex_conv_pointwise(
        x: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        padding: *const i64,
        stride: *const i64,
        dilation: *const i64,
        dims: i64,
        groups: i64,
        attr: *const c_char,
        scalars: *const f64,
        n_scalars: i64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    pub fn tex_conv_pointwise_available(out: *mut bool) -> *mut c_char;
    pub fn tex_max_pool3d_2x(x: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    pub fn tex_leaky_frame_shift(
        y: *mut C_tensor,
        corr: *const C_tensor,
        slope: f64,
    ) -> *mut c_char;
    pub fn tex_parallel_for(
        begin: i64,
        end: i64,
        grain: i64,
        body: unsafe extern "C" fn(ctx: *mut c_void, begin: i64, end: i64),
        ctx: *mut c_void,
    ) -> *mut c_char;
}

/// Turns the shim's error convention (NULL or an owned message) into a Result.
pub fn check(err: *mut c_char) -> Result<(), Error> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-NULL return is a NUL-terminated strdup'd string from the
    // shim that nobody else holds; it is read once and then released by the
    // shim's own free so the allocators match.
    let msg = unsafe {
        let msg = CStr::from_ptr(err).to_string_lossy().into_owned();
        tex_free_error(err);
        msg
    };
    Err(Error::Torch(msg))
}

/// c10::ScalarType's numbering (tch keeps its own mapping private).
pub fn kind_to_c(kind: Kind) -> c_int {
    match kind {
        Kind::Uint8 => 0,
        Kind::Int8 => 1,
        Kind::Int16 => 2,
        Kind::Int => 3,
        Kind::Int64 => 4,
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::Double => 7,
        Kind::ComplexHalf => 8,
        Kind::ComplexFloat => 9,
        Kind::ComplexDouble => 10,
        Kind::Bool => 11,
        Kind::QInt8 => 12,
        Kind::QUInt8 => 13,
        Kind::QInt32 => 14,
        Kind::BFloat16 => 15,
        Kind::Float8e5m2 => 23,
        Kind::Float8e4m3fn => 24,
        Kind::Float8e5m2fnuz => 25,
        Kind::Float8e4m3fnuz => 26,
    }
}

/// Inverse of [`kind_to_c`].
pub fn kind_from_c(v: c_int) -> Result<Kind, Error> {
    Ok(match v {
        0 => Kind::Uint8,
        1 => Kind::Int8,
        2 => Kind::Int16,
        3 => Kind::Int,
        4 => Kind::Int64,
        5 => Kind::Half,
        6 => Kind::Float,
        7 => Kind::Double,
        8 => Kind::ComplexHalf,
        9 => Kind::ComplexFloat,
        10 => Kind::ComplexDouble,
        11 => Kind::Bool,
        12 => Kind::QInt8,
        13 => Kind::QUInt8,
        14 => Kind::QInt32,
        15 => Kind::BFloat16,
        23 => Kind::Float8e5m2,
        24 => Kind::Float8e4m3fn,
        25 => Kind::Float8e5m2fnuz,
        26 => Kind::Float8e4m3fnuz,
        other => return Err(Error::UnknownScalarType(other)),
    })
}
