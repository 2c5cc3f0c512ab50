//! RMSprop with `torch.optim` semantics (not centered, not maximizing).
//!
//! Per parameter with a gradient `g`: L2 decay `g += weight_decay·p`;
//! `v = α·v + (1 − α)·g²`; `a = √v + eps`; with momentum `μ > 0`,
//! `buf = μ·buf + g/a` and `p −= lr·buf`, else `p −= lr·g/a`.
//!
//! The update does not depend on a step count, so none is kept.
//! Checkpoints hold `square_avg.<param>` and, with momentum,
//! `momentum_buffer.<param>` (torch's names; not SGD's `momentum.`, so that
//! one optimizer's checkpoint is never mistaken for the other's).

use tch::nn::VarStore;
use tch::Tensor;

use super::params::{state_name, OptimizerStateError, Params};
use super::slots::{commit, SlotState};
use super::Optimize;

const SQUARE_AVG: &str = "square_avg";
const MOMENTUM_BUFFER: &str = "momentum_buffer";
const SLOTS: &[&str] = &[SQUARE_AVG, MOMENTUM_BUFFER];
/// Without momentum there is no buffer to keep.
const SLOTS_WITHOUT_MOMENTUM: &[&str] = &[SQUARE_AVG];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
}

impl RmsPropConfig {
    fn with_momentum(&self) -> bool {
        self.momentum > 0.0
    }
}

pub struct RmsProp {
    config: RmsPropConfig,
    params: Params,
    /// `square_avg` and, with momentum, `momentum_buffer` per parameter.
    state: SlotState,
}

impl RmsProp {
    pub fn new(vs: &VarStore, config: RmsPropConfig) -> Self {
        let params = Params::trainable(vs);
        let slots = if config.with_momentum() {
            SLOTS
        } else {
            SLOTS_WITHOUT_MOMENTUM
        };
        let state = SlotState::new("RMSprop", slots, &params);
        RmsProp {
            config,
            params,
            state,
        }
    }
}

/// torch's single-tensor RMSprop out of place, committed unless `skip`.
fn rmsprop_step(
    c: &RmsPropConfig,
    p: &Tensor,
    grad: Tensor,
    slots: &[Tensor],
    skip: Option<&Tensor>,
) {
    let grad = if c.weight_decay != 0.0 {
        &grad + &(p * c.weight_decay)
    } else {
        grad
    };
    let square_avg = &slots[0];
    // torch's addcmul_(g, g, value) computes (value·g)·g.
    let new_square_avg = (square_avg * c.alpha).addcmul(&(&grad * (1.0 - c.alpha)), &grad);
    let avg = new_square_avg.sqrt() + c.eps;
    let new_p = match slots.get(1) {
        Some(buf) => {
            let new_buf = (buf * c.momentum).addcdiv(&grad, &avg);
            let new_p = p + &new_buf * -c.lr;
            commit(buf, &new_buf, skip);
            new_p
        }
        // torch's addcdiv_(g, a, value) computes (value·g)/a.
        None => p.addcdiv(&(&grad * -c.lr), &avg),
    };
    commit(square_avg, &new_square_avg, skip);
    commit(p, &new_p, skip);
}

impl Optimize for RmsProp {
    fn name(&self) -> &'static str {
        "RMSprop"
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn update(&mut self, skip: Option<&Tensor>) {
        let c = self.config;
        let init = |p: &Tensor| {
            let buffers = if c.with_momentum() { 2 } else { 1 };
            (0..buffers).map(|_| p.zeros_like()).collect()
        };
        self.state
            .step_each(&self.params, init, |_, p, grad, slots, _| {
                rmsprop_step(&c, p, grad, slots, skip)
            });
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.state.save(&self.params)
    }

    fn load_state(&mut self, saved: Vec<(String, Tensor)>) -> Result<(), OptimizerStateError> {
        // A buffer without momentum would never be read: a checkpoint of
        // another configuration.
        if let (false, Some((name, _))) = (
            self.config.with_momentum(),
            saved
                .iter()
                .find(|(n, _)| n.starts_with(&state_name(MOMENTUM_BUFFER, ""))),
        ) {
            return Err(OptimizerStateError::ForeignState {
                name: name.clone(),
                optimizer: "RMSprop without momentum",
                expected: SLOTS_WITHOUT_MOMENTUM,
            });
        }
        self.state = self.state.restored(&self.params, saved)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{backward, one_weight, values, GRADS};

    fn setup(momentum: f64) -> (VarStore, Tensor, RmsProp) {
        let (vs, w) = one_weight();
        let opt = RmsProp::new(
            &vs,
            RmsPropConfig {
                lr: 0.01,
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: 0.1,
                momentum,
            },
        );
        (vs, w, opt)
    }

    fn reference(momentum: f64, steps: usize) -> [f64; 3] {
        let (lr, alpha, eps, wd) = (0.01, 0.99, 1e-8, 0.1);
        let (mut p, mut v, mut buf) = ([1.0f64; 3], [0.0f64; 3], [0.0f64; 3]);
        for g in GRADS.iter().take(steps) {
            for k in 0..3 {
                let d = g[k] as f64 + wd * p[k];
                v[k] = alpha * v[k] + (1.0 - alpha) * d * d;
                let avg = v[k].sqrt() + eps;
                if momentum > 0.0 {
                    buf[k] = momentum * buf[k] + d / avg;
                    p[k] -= lr * buf[k];
                } else {
                    p[k] -= lr * d / avg;
                }
            }
        }
        p
    }

    #[test]
    fn follows_the_torch_recurrence_with_and_without_momentum_on_both_paths() {
        let no_skip = Tensor::from_slice(&[false]);
        for momentum in [0.0, 0.9] {
            let (_vs, w, mut plain) = setup(momentum);
            let (_vs2, w2, mut masked) = setup(momentum);
            for (i, g) in GRADS.iter().enumerate() {
                plain.zero_grad();
                backward(&w, g);
                plain.step();
                masked.zero_grad();
                backward(&w2, g);
                masked.step_unless(&no_skip);
                let expected = reference(momentum, i + 1);
                for got in [values(&w), values(&w2)] {
                    for (g, e) in got.iter().zip(&expected) {
                        assert!((*g as f64 - e).abs() < 1e-6, "{got:?} vs {expected:?}");
                    }
                }
            }
            let names: Vec<String> = plain.state().into_iter().map(|(n, _)| n).collect();
            let expected: &[&str] = if momentum > 0.0 {
                &["square_avg.w", "momentum_buffer.w"]
            } else {
                &["square_avg.w"]
            };
            assert_eq!(names, expected);
        }
    }

    #[test]
    fn a_skipped_step_changes_nothing() {
        let (skip, go) = (Tensor::from_slice(&[true]), Tensor::from_slice(&[false]));
        let (_vs, w, mut opt) = setup(0.9);
        let (_vs_ref, w_ref, mut reference) = setup(0.9);
        for g in &GRADS {
            opt.zero_grad();
            backward(&w, &[f32::INFINITY, 1.0, 1.0]);
            opt.step_unless(&skip);
            opt.zero_grad();
            backward(&w, g);
            opt.step_unless(&go);
            reference.zero_grad();
            backward(&w_ref, g);
            reference.step_unless(&go);
        }
        assert_eq!(values(&w), values(&w_ref));
        let flat =
            |o: &RmsProp| -> Vec<Vec<f32>> { o.state().iter().map(|(_, t)| values(t)).collect() };
        assert_eq!(flat(&opt), flat(&reference));
    }

    #[test]
    fn restores_its_state_and_refuses_a_mismatched_one() {
        let (_vs_a, w_a, mut a) = setup(0.9);
        for g in &GRADS[..2] {
            a.zero_grad();
            backward(&w_a, g);
            a.step();
        }
        let (_vs_b, w_b, mut b) = setup(0.9);
        tch::no_grad(|| w_b.shallow_clone().copy_(&w_a));
        b.load_state(a.state().into_iter().map(|(n, t)| (n, t.copy())).collect())
            .unwrap();
        for (opt, w) in [(&mut a, &w_a), (&mut b, &w_b)] {
            for g in &GRADS[2..] {
                opt.zero_grad();
                backward(w, g);
                opt.step();
            }
        }
        assert!(w_a.equal(&w_b));

        let (_vs_c, _w_c, mut without_momentum) = setup(0.0);
        let err = without_momentum.load_state(a.state()).unwrap_err();
        assert!(err.to_string().contains("momentum_buffer.w"), "{err}");
        let (_vs_d, _w_d, mut with_momentum) = setup(0.9);
        let only_square: Vec<_> = a.state().into_iter().take(1).collect();
        let err = with_momentum.load_state(only_square).unwrap_err();
        assert!(
            matches!(err, OptimizerStateError::Incomplete { .. }),
            "{err}"
        );
    }
}
