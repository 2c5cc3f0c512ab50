//! `torch.amp.GradScaler`'s fused unscale: one foreach kernel for all
//! gradients instead of a multiply, an `isfinite` and a reduction per tensor.

use tch::Tensor;

use crate::ffi::{self, check};
use crate::Error;

/// Every tensor of `grads` is multiplied by `inv_scale` in place, and
/// `found_inf` (float `[1]`) is set to 1 when any of them held an inf or a
/// NaN (it is never cleared: callers pass a zero). `inv_scale` is float
/// `[1]`; all on one device.
pub fn non_finite_check_and_unscale_(
    grads: &[Tensor],
    found_inf: &mut Tensor,
    inv_scale: &Tensor,
) -> Result<(), Error> {
    let raw: Vec<_> = grads.iter().map(|g| g.as_ptr()).collect();
    // SAFETY: every pointer is a live tch tensor borrowed for the call (the
    // slice outlives it); `found_inf` is borrowed mutably, as the op writes it.
    check(unsafe {
        ffi::tex_amp_non_finite_check_and_unscale(
            raw.as_ptr(),
            raw.len() as i64,
            found_inf.as_mut_ptr(),
            inv_scale.as_ptr(),
        )
    })
}
