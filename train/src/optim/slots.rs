//! Optimizer state as declared slots: each optimizer names the tensors it
//! keeps per parameter, and this module alone creates, saves, restores and
//! (with a loss scaler's skip mask) commits them, and says when torch's
//! fused kernels can step them instead.
//!
//! A checkpoint holds slot `s` of parameter `p` as `<s>.<p>` (see
//! [`state_name`]), with torch's slot names.

use tch::Tensor;

use super::params::{state_name, OptimizerStateError, Params};

/// The per-parameter state of one optimizer, in its declared slot order;
/// none for a parameter before its first step.
pub struct SlotState {
    optimizer: &'static str,
    names: &'static [&'static str],
    per_param: Vec<Option<Vec<Tensor>>>,
}

impl SlotState {
    /// No state yet for any of `params`. `optimizer` names it in messages.
    pub fn new(optimizer: &'static str, names: &'static [&'static str], params: &Params) -> Self {
        SlotState {
            optimizer,
            names,
            per_param: (0..params.len()).map(|_| None).collect(),
        }
    }

    /// Parameter `i`'s slots, if it has taken a step (or had them restored).
    pub fn get(&self, i: usize) -> Option<&[Tensor]> {
        self.per_param[i].as_deref()
    }

    /// Calls `step(i, parameter, gradient, slots, fresh)` under no-grad for
    /// every parameter with a gradient. A parameter's slots are made by
    /// `init` before its first step, which is then `fresh`.
    pub fn step_each(
        &mut self,
        params: &Params,
        init: impl Fn(&Tensor) -> Vec<Tensor>,
        mut step: impl FnMut(usize, &Tensor, Tensor, &mut [Tensor], bool),
    ) {
        tch::no_grad(|| {
            for (i, ((_, p), slots)) in params.iter().zip(&mut self.per_param).enumerate() {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let fresh = slots.is_none();
                let slots = slots.get_or_insert_with(|| init(p));
                debug_assert_eq!(slots.len(), self.names.len());
                step(i, p, grad, slots, fresh);
            }
        });
    }

    /// The whole state as `<slot>.<param>` tensors (shallow clones).
    pub fn save(&self, params: &Params) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for ((param, _), slots) in params.iter().zip(&self.per_param) {
            for (name, t) in self.names.iter().zip(slots.iter().flatten()) {
                out.push((state_name(name, param), t.shallow_clone()));
            }
        }
        out
    }

    /// The state `saved` holds (as [`SlotState::save`] wrote it), on the
    /// parameters' devices; a parameter has all of its slots or none.
    pub fn restored(
        &self,
        params: &Params,
        saved: Vec<(String, Tensor)>,
    ) -> Result<SlotState, OptimizerStateError> {
        let sorted = params.sort_state(saved, self.optimizer, self.names)?;
        let mut per_param = Vec::with_capacity(sorted.len());
        for (i, slots) in sorted.into_iter().enumerate() {
            if slots.iter().all(Option::is_none) {
                per_param.push(None);
                continue;
            }
            if let Some(missing) = slots.iter().position(Option::is_none) {
                return Err(OptimizerStateError::Incomplete {
                    optimizer: self.optimizer,
                    param: params.name(i).to_owned(),
                    missing: self.names[missing],
                });
            }
            per_param.push(Some(slots.into_iter().flatten().collect()));
        }
        Ok(SlotState {
            optimizer: self.optimizer,
            names: self.names,
            per_param,
        })
    }
}

/// `dst = new`, or `dst` unchanged where `skip` (a bool `[1]` tensor) is
/// true: every optimizer computes its step out of place and commits it
/// here, so the plain step is the masked one without a mask.
pub fn commit(dst: &Tensor, new: &Tensor, skip: Option<&Tensor>) {
    let value = match skip {
        Some(skip) => dst.where_self(&skip.reshape([]), new),
        None => new.shallow_clone(),
    };
    dst.shallow_clone().copy_(&value);
}

/// Whether torch's fused optimizer kernels take `params` with the lists of
/// `others` (gradients, state) beside them: one device, one floating type,
/// dense, and each partner laid out as its parameter (the kernels walk
/// them as flat arrays together). An empty list has nothing to fuse.
pub fn fusable(params: &[Tensor], others: &[&Vec<Tensor>]) -> bool {
    let Some(first) = params.first() else {
        return false;
    };
    let (device, kind) = (first.device(), first.kind());
    params.iter().enumerate().all(|(i, p)| {
        p.device() == device
            && p.kind() == kind
            && p.is_floating_point()
            && dense(p)
            && others.iter().all(|list| {
                let t = &list[i];
                t.device() == device && t.kind() == kind && t.stride() == p.stride()
            })
    })
}

/// Non-overlapping and without gaps in some dimension order (contiguous,
/// channels-last, …): the memory holds exactly its elements.
fn dense(t: &Tensor) -> bool {
    let mut dims: Vec<(i64, i64)> = t
        .stride()
        .into_iter()
        .zip(t.size())
        .filter(|&(_, n)| n != 1)
        .collect();
    dims.sort_unstable();
    let mut expected = 1;
    dims.into_iter().all(|(stride, n)| {
        let ok = stride == expected;
        expected *= n;
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn fused_kernels_get_only_dense_lists_laid_out_as_their_parameters() {
        let p = Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let same = vec![p.zeros_like()];
        assert!(fusable(&[p.shallow_clone()], &[&same]));
        assert!(!fusable(&[], &[]), "nothing to fuse");
        // Channels-last parameters with channels-last state are dense too.
        let cl = p.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(fusable(&[cl.shallow_clone()], &[&vec![cl.zeros_like()]]));
        // A partner laid out otherwise, of another type, or a strided view, is not.
        assert!(!fusable(&[cl.shallow_clone()], &[&same]));
        let half = vec![p.to_kind(Kind::Half)];
        assert!(!fusable(&[p.shallow_clone()], &[&half]));
        let gappy = Tensor::zeros([2, 6], (Kind::Float, Device::Cpu)).narrow(1, 0, 3);
        assert!(!fusable(
            &[gappy.shallow_clone()],
            &[&vec![gappy.shallow_clone()]]
        ));
        let ints = Tensor::zeros([3], (Kind::Int64, Device::Cpu));
        assert!(!fusable(
            &[ints.shallow_clone()],
            &[&vec![ints.shallow_clone()]]
        ));
    }
}
