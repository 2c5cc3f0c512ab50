//! `torch.optim`'s fused Adam/AdamW and SGD steps: one kernel over every
//! parameter instead of a dozen per tensor, with the loss scaler's skip
//! decided on the device (`found_inf`), as `GradScaler` drives a fused
//! optimizer. The arithmetic is torch's own.

use std::ptr;

use tch::Tensor;

use crate::ffi::{self, check};
use crate::Error;

/// Adam's hyper-parameters for one step (amsgrad off, not maximizing).
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    /// AdamW's decay (`p *= 1 − lr·wd`) instead of Adam's L2 term.
    pub decoupled_weight_decay: bool,
}

/// The tensors of a fused Adam step, one entry per parameter, all on one
/// device; `steps` are 0-dim float counts.
pub struct AdamTensors<'a> {
    pub params: &'a [Tensor],
    pub grads: &'a [Tensor],
    pub exp_avgs: &'a [Tensor],
    pub exp_avg_sqs: &'a [Tensor],
    pub steps: &'a [Tensor],
}

/// One Adam step over `t` in place, counts included, unless `found_inf` (a
/// 0-dim float on the same device) is 1: then nothing changes.
pub fn fused_adam_(
    t: &AdamTensors<'_>,
    h: &AdamStep,
    found_inf: Option<&Tensor>,
) -> Result<(), Error> {
    let n = t.params.len();
    let lists = [t.grads, t.exp_avgs, t.exp_avg_sqs, t.steps];
    if lists.iter().any(|l| l.len() != n) {
        return Err(Error::UnequalLists("fused Adam"));
    }
    let [p, g, m, v, s] = [t.params, t.grads, t.exp_avgs, t.exp_avg_sqs, t.steps].map(raw);
    // SAFETY: every pointer is a live tch tensor borrowed for the call;
    // the lists are `n` long (checked above); the op writes only through them.
    check(unsafe {
        ffi::tex_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n as i64,
            h.lr,
            h.beta1,
            h.beta2,
            h.weight_decay,
            h.eps,
            h.decoupled_weight_decay,
            found_inf.map_or(ptr::null(), Tensor::as_ptr),
        )
    })
}

/// SGD's hyper-parameters for one step (dampening 0, not maximizing).
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// The buffers become the gradients (torch's first step).
    pub first_step: bool,
}

/// One SGD-with-momentum step over `params` and their momentum `buffers`
/// in place, unless `found_inf` (0-dim float) is 1.
pub fn fused_sgd_(
    params: &[Tensor],
    grads: &[Tensor],
    buffers: &[Tensor],
    h: &SgdStep,
    found_inf: Option<&Tensor>,
) -> Result<(), Error> {
    let n = params.len();
    if grads.len() != n || buffers.len() != n {
        return Err(Error::UnequalLists("fused SGD"));
    }
    let [p, g, b] = [params, grads, buffers].map(raw);
    // SAFETY: as in `fused_adam_`.
    check(unsafe {
        ffi::tex_fused_sgd(
            p.as_ptr(),
            g.as_ptr(),
            b.as_ptr(),
            n as i64,
            h.lr,
            h.momentum,
            h.weight_decay,
            h.nesterov,
            h.first_step,
            found_inf.map_or(ptr::null(), Tensor::as_ptr),
        )
    })
}

fn raw(list: &[Tensor]) -> Vec<*const torch_sys::C_tensor> {
    list.iter().map(|t| t.as_ptr()).collect()
}
