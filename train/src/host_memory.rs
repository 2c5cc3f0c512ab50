//! How the process's C allocator treats libtorch's large CPU buffers.
//!
//! A LunaModel training step at batch 32 allocates and frees ~1.4 GB of
//! activations and gradients, several of them above glibc's mmap threshold
//! (at most 32 MiB by default): those come from fresh `mmap`s every step,
//! and the kernel faults, zeroes and cgroup-charges every page of them again.
//! On the 2-core Xeon that was a third of the step's time (`perf`: page
//! faults, `clear_page`, memcg charge) and 3.6 M minor faults for 10 steps;
//! keeping freed memory in the heap took the fp32 channels-last step from 32
//! to 54 samples/s (BENCHMARKS.md). The cost is that the process keeps its
//! peak heap (~1.4 GB at batch 32) until it exits.

/// Serve every allocation from the heap and never give freed memory back to
/// the kernel. Call once, before libtorch allocates. Returns whether glibc
/// accepted both settings (other C libraries: nothing happens, `false`).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // 1 GiB is far above any one tensor of this model and still accepted
        // by glibc's bound on the threshold; trimming waits for 2 GiB free.
        const MMAP_THRESHOLD: libc::c_int = 1 << 30;
        const TRIM_THRESHOLD: libc::c_int = libc::c_int::MAX;
        // SAFETY: mallopt only changes allocator parameters; both are
        // documented to be settable at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
