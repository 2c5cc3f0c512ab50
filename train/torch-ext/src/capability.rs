//! Whether the hardware computes bf16 natively, to decide if bf16 autocast
//! is worth it (it still works everywhere, emulated and slower).

use std::ffi::{c_int, CString};
use std::sync::OnceLock;

use crate::ffi::{self, check};

/// A boolean entry of libtorch's `at::cpu::get_cpu_capabilities()` (cpuinfo's
/// names: "avx512_bf16", "amx_bf16", "avx2", "avx512_fp16", …); `None` when the
/// name is not a boolean capability there.
pub fn cpu_feature(name: &str) -> Option<bool> {
    let name = CString::new(name).ok()?;
    let mut out: c_int = -1;
    // SAFETY: `name` is NUL-terminated and outlives the call; `out` is live.
    check(unsafe { ffi::tex_cpu_feature(name.as_ptr(), &mut out) }).ok()?;
    match out {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    }
}

/// Whether the CPU has bf16 arithmetic instructions (AVX512-BF16 or AMX-BF16),
/// the ones oneDNN's fast bf16 convolution and matmul kernels need.
pub fn cpu_has_native_bf16() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        cpu_feature("avx512_bf16").unwrap_or(false) || cpu_feature("amx_bf16").unwrap_or(false)
    })
}

/// Whether CUDA device `device_index` computes bf16 natively (compute
/// capability 8.0 or newer), as libtorch's CUDA hooks report it. False when
/// libtorch_cuda is not loaded, there is no such GPU, or libtorch was built
/// without cuDNN (the hooks answer through a cuDNN-guarded check). Makes that
/// device current for the query (creating its CUDA context) and restores the
/// previous one.
pub fn cuda_supports_bf16(device_index: usize) -> bool {
    let Ok(index) = i64::try_from(device_index) else {
        return false;
    };
    let mut out = false;
    // SAFETY: plain value argument; `out` is a live local.
    check(unsafe { ffi::tex_cuda_supports_bf16(index, &mut out) }).is_ok() && out
}
