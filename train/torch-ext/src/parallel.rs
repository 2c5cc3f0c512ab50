//! Loops on libtorch's own thread team (`at::parallel_for`).
//!
//! CPU work done between libtorch's ops on another pool (rayon) competes
//! with libtorch's OpenMP threads, which spin for a while after each op
//! before they sleep: on a 2-core machine the augmentation's warp took ~60%
//! longer inside a training step than alone for that reason. Run on the
//! same team, the work takes the cores those threads would spin on.

use std::any::Any;
use std::ffi::c_void;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use crate::ffi::{self, check};
use crate::Error;

/// Calls `body` on disjoint chunks covering `range`, each at least `grain`
/// long (but the last), on libtorch's intra-op threads (as many as
/// `tch::set_num_threads` allows; serially where it allows one). A panic
/// in `body` is re-raised here once the loop is over.
pub fn parallel_for<F>(range: Range<usize>, grain: usize, body: F) -> Result<(), Error>
where
    F: Fn(Range<usize>) + Sync,
{
    if range.is_empty() {
        return Ok(());
    }
    let job = Job {
        body,
        panic: Mutex::new(None),
    };
    // SAFETY: `job` outlives the call, which returns only after every chunk
    // ran; the trampoline only reads it through a shared reference, and
    // `F: Sync` makes that sound from several threads at once.
    let status = check(unsafe {
        ffi::tex_parallel_for(
            range.start as i64,
            range.end as i64,
            grain.max(1) as i64,
            trampoline::<F>,
            std::ptr::from_ref(&job).cast_mut().cast::<c_void>(),
        )
    });
    if let Some(payload) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        std::panic::resume_unwind(payload);
    }
    status
}

struct Job<F> {
    body: F,
    /// The first panic of any chunk: a panic must not unwind through C++.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

unsafe extern "C" fn trampoline<F>(ctx: *mut c_void, begin: i64, end: i64)
where
    F: Fn(Range<usize>) + Sync,
{
    // SAFETY: `ctx` is the `Job<F>` `parallel_for` lent for this call.
    let job = unsafe { &*ctx.cast::<Job<F>>() };
    let chunk = begin as usize..end as usize;
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (job.body)(chunk))) {
        let mut first = job.panic.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(payload);
    }
}
