//! SGD with momentum, PyTorch semantics, with inspectable momentum buffers.
//!
//! tch's optimizer keeps its buffers inside libtorch where they cannot be
//! exported, and resuming a momentum-0.99 run without them is not a resume;
//! hence this small re-implementation over the VarStore tensors.
//!
//! Per parameter with a gradient `g` (dampening 0): L2 weight decay first,
//! `g += weight_decay·p`; then `buf = g` on the first step,
//! `buf = momentum·buf + g` after; `p -= lr·buf`, or with Nesterov
//! `p -= lr·(g + momentum·buf)`. Checkpoints name the buffers
//! `momentum.<param>`.

use tch::nn::VarStore;
use tch::{Kind, Tensor};
use torch_ext::SgdStep;

use super::params::{state_name, OptimizerStateError, Params};
use super::slots::{commit, fusable, SlotState};
use super::Optimize;

const MOMENTUM_SLOT: &str = "momentum";
const SLOTS: &[&str] = &[MOMENTUM_SLOT];

pub struct Sgd {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
    params: Params,
    /// The momentum buffer per parameter, from its first step.
    state: SlotState,
    /// Skippable steps run torch's fused kernel where the tensors allow.
    fused: bool,
}

impl Sgd {
    pub fn new(vs: &VarStore, lr: f64, momentum: f64) -> Self {
        let params = Params::trainable(vs);
        let state = SlotState::new("SGD", SLOTS, &params);
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            nesterov: false,
            params,
            state,
            fused: true,
        }
    }

    /// A skippable step as torch's `SGD(fused=True)` under a `GradScaler`:
    /// one kernel per group of parameters (those on their first step, and
    /// the others), skipped on the device. False, with nothing done, where
    /// the tensors do not allow it.
    fn fused_update(&mut self, skip: &Tensor) -> bool {
        // [params, grads, buffers] of the parameters on their first step, then of the rest.
        let mut groups: [[Vec<Tensor>; 3]; 2] = Default::default();
        let init = |p: &Tensor| vec![p.zeros_like()];
        self.state
            .step_each(&self.params, init, |_, p, grad, slots, fresh| {
                let group = &mut groups[usize::from(!fresh)];
                for (list, t) in group.iter_mut().zip([p, &grad, &slots[0]]) {
                    list.push(t.shallow_clone());
                }
            });
        let fits = |[p, g, b]: &[Vec<Tensor>; 3]| p.is_empty() || fusable(p, &[g, b]);
        if !groups.iter().all(fits) {
            return false;
        }
        let found_inf = skip.to_kind(Kind::Float).reshape([]);
        for (first_step, [params, grads, buffers]) in [true, false].into_iter().zip(&groups) {
            if params.is_empty() {
                continue;
            }
            let step = SgdStep {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                nesterov: self.nesterov,
                first_step,
            };
            tch::no_grad(|| torch_ext::fused_sgd_(params, grads, buffers, &step, Some(&found_inf)))
                .unwrap_or_else(|e| panic!("fused SGD step: {e}"));
        }
        true
    }

    /// Adds L2 weight decay (PyTorch's `weight_decay`: `g += wd·p`).
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Nesterov momentum (PyTorch's `nesterov=True`).
    pub fn with_nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// The buffers that exist so far (none before the first step), by parameter name.
    pub fn momentum_buffers(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .enumerate()
            .filter_map(|(i, (name, _))| {
                let buffer = self.state.get(i)?;
                Some((name.clone(), buffer[0].shallow_clone()))
            })
            .collect()
    }

    /// Restores buffers saved by [`Sgd::momentum_buffers`], copied onto each
    /// parameter's device.
    pub fn load_momentum_buffers(
        &mut self,
        saved: Vec<(String, Tensor)>,
    ) -> Result<(), OptimizerStateError> {
        self.load_state(
            saved
                .into_iter()
                .map(|(n, t)| (state_name(MOMENTUM_SLOT, &n), t))
                .collect(),
        )
    }
}

impl Optimize for Sgd {
    fn name(&self) -> &'static str {
        "SGD"
    }

    fn params(&self) -> &Params {
        &self.params
    }

    /// The first step sets the buffer to the gradient, as torch does; a
    /// skipped first step leaves it zero, which the next step turns into
    /// its gradient exactly as a missing one would be.
    fn update(&mut self, skip: Option<&Tensor>) {
        if let Some(skip) = skip.filter(|_| self.fused) {
            if self.fused_update(skip) {
                return;
            }
        }
        let (lr, momentum, weight_decay, nesterov) =
            (self.lr, self.momentum, self.weight_decay, self.nesterov);
        let init = |p: &Tensor| vec![p.zeros_like()];
        self.state
            .step_each(&self.params, init, |_, p, grad, slots, fresh| {
                let grad = if weight_decay != 0.0 {
                    &grad + &(p * weight_decay)
                } else {
                    grad
                };
                let buf = &slots[0];
                let new_buf = if fresh {
                    grad.detach().copy()
                } else {
                    buf * momentum + &grad
                };
                let update = if nesterov {
                    &grad + &(&new_buf * momentum)
                } else {
                    new_buf.shallow_clone()
                };
                let new_p = p + &update * -lr;
                commit(buf, &new_buf, skip);
                commit(p, &new_p, skip);
            });
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.state.save(&self.params)
    }

    fn load_state(&mut self, saved: Vec<(String, Tensor)>) -> Result<(), OptimizerStateError> {
        self.state = self.state.restored(&self.params, saved)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{backward, one_weight};
    use tch::Device;

    #[test]
    fn matches_pytorch_momentum_recurrence() {
        let (vs, w) = one_weight();
        let mut opt = Sgd::new(&vs, 0.1, 0.9);
        let grads = [[1.0f32, 2.0, -1.0], [0.5, 0.0, 1.0], [-2.0, 1.0, 0.0]];
        let (mut p, mut buf) = ([1.0f64; 3], [0.0f64; 3]);
        for (step, g) in grads.iter().enumerate() {
            opt.zero_grad();
            backward(&w, g);
            opt.step();
            for k in 0..3 {
                buf[k] = if step == 0 {
                    g[k] as f64
                } else {
                    0.9 * buf[k] + g[k] as f64
                };
                p[k] -= 0.1 * buf[k];
            }
            let got = Vec::<f32>::try_from(&w).unwrap();
            for k in 0..3 {
                assert!(
                    (got[k] as f64 - p[k]).abs() < 1e-6,
                    "step {step}: {got:?} vs {p:?}"
                );
            }
        }
        let saved = opt.momentum_buffers();
        assert_eq!(saved.len(), 1);
        let b = Vec::<f32>::try_from(&saved[0].1).unwrap();
        for k in 0..3 {
            assert!((b[k] as f64 - buf[k]).abs() < 1e-6);
        }
    }

    #[test]
    fn weight_decay_adds_wd_times_the_parameter_to_the_gradient() {
        let (vs, w) = one_weight();
        let mut opt = Sgd::new(&vs, 0.1, 0.9).with_weight_decay(0.5);
        let (mut p, mut buf) = ([1.0f64; 3], [0.0f64; 3]);
        let grads = [[1.0f32, 0.0, -1.0], [0.5, 2.0, 0.0]];
        for (step, g) in grads.iter().enumerate() {
            opt.zero_grad();
            backward(&w, g);
            opt.step();
            for k in 0..3 {
                let d = g[k] as f64 + 0.5 * p[k];
                buf[k] = if step == 0 { d } else { 0.9 * buf[k] + d };
                p[k] -= 0.1 * buf[k];
            }
        }
        let got = Vec::<f32>::try_from(&w).unwrap();
        for k in 0..3 {
            assert!((got[k] as f64 - p[k]).abs() < 1e-6, "{got:?} vs {p:?}");
        }
    }

    #[test]
    fn nesterov_steps_by_the_gradient_plus_momentum_times_the_buffer_on_every_path() {
        let (vs, w) = one_weight();
        let mut plain = Sgd::new(&vs, 0.1, 0.9).with_nesterov(true);
        // Skippable steps, through torch's fused kernel and through the mask.
        let mut skippable: Vec<_> = [true, false]
            .map(|fused| {
                let (vs, w) = one_weight();
                let mut sgd = Sgd::new(&vs, 0.1, 0.9).with_nesterov(true);
                sgd.fused = fused;
                (vs, w, sgd)
            })
            .into();
        assert!(skippable[0].2.fused && !skippable[1].2.fused);
        let no_skip = Tensor::from_slice(&[false]);
        let (mut p, mut buf) = ([1.0f64; 3], [0.0f64; 3]);
        for (step, g) in [[1.0f32, 2.0, -1.0], [0.5, 0.0, 1.0], [-2.0, 1.0, 0.0]]
            .iter()
            .enumerate()
        {
            plain.zero_grad();
            backward(&w, g);
            plain.step();
            for (_, w2, sgd) in &mut skippable {
                sgd.zero_grad();
                backward(w2, g);
                sgd.step_unless(&no_skip);
            }
            for k in 0..3 {
                let g = g[k] as f64;
                buf[k] = if step == 0 { g } else { 0.9 * buf[k] + g };
                p[k] -= 0.1 * (g + 0.9 * buf[k]);
            }
            for w in [&w, &skippable[0].1, &skippable[1].1] {
                let got = Vec::<f32>::try_from(w).unwrap();
                for k in 0..3 {
                    assert!((got[k] as f64 - p[k]).abs() < 1e-6, "{got:?} vs {p:?}");
                }
            }
            // The mask commits the plain arithmetic; torch's kernel rounds its own way.
            assert!(
                w.equal(&skippable[1].1),
                "step {step}: the masked path differs"
            );
        }
    }

    #[test]
    fn restored_buffers_continue_the_same_trajectory() {
        let (vs_a, w_a) = one_weight();
        let mut a = Sgd::new(&vs_a, 0.1, 0.9);
        for g in [[1.0f32, 1.0, 1.0], [2.0, 0.0, -1.0]] {
            a.zero_grad();
            backward(&w_a, &g);
            a.step();
        }
        let (vs_b, w_b) = one_weight();
        tch::no_grad(|| w_b.shallow_clone().copy_(&w_a));
        let mut b = Sgd::new(&vs_b, 0.1, 0.9);
        b.load_momentum_buffers(
            a.momentum_buffers()
                .into_iter()
                .map(|(n, t)| (n, t.copy()))
                .collect(),
        )
        .unwrap();
        for (opt, w) in [(&mut a, &w_a), (&mut b, &w_b)] {
            opt.zero_grad();
            backward(w, &[0.5, 0.5, 0.5]);
            opt.step();
        }
        assert!(w_a.equal(&w_b));
    }

    #[test]
    fn rejects_buffers_that_do_not_fit() {
        let (vs, _) = one_weight();
        let mut opt = Sgd::new(&vs, 0.1, 0.9);
        let err = opt.load_momentum_buffers(vec![(
            "w".into(),
            Tensor::zeros([4], (Kind::Float, Device::Cpu)),
        )]);
        assert!(matches!(
            err,
            Err(OptimizerStateError::ShapeMismatch { .. })
        ));
        let err = opt.load_momentum_buffers(vec![(
            "v".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        )]);
        assert!(matches!(
            err,
            Err(OptimizerStateError::UnknownParameter { .. })
        ));
    }
}
