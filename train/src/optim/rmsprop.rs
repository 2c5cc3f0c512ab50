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
use super::Optimize;

const SQUARE_AVG: &str = "square_avg";
const MOMENTUM_BUFFER: &str = "momentum_buffer";
const SLOTS: &[&str] = &[SQUARE_AVG, MOMENTUM_BUFFER];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
}

pub struct RmsProp {
    config: RmsPropConfig,
    params: Params,
    state: Vec<Option<ParamState>>,
}

struct ParamState {
    square_avg: Tensor,
    /// With momentum only.
    momentum_buffer: Option<Tensor>,
}

impl RmsProp {
    pub fn new(vs: &VarStore, config: RmsPropConfig) -> Self {
        let params = Params::trainable(vs);
        let state = (0..params.len()).map(|_| None).collect();
        RmsProp {
            config,
            params,
            state,
        }
    }
}

fn decayed_gradient(c: &RmsPropConfig, p: &Tensor, grad: Tensor) -> Tensor {
    if c.weight_decay != 0.0 {
        &grad + &(p * c.weight_decay)
    } else {
        grad
    }
}

/// torch's single-tensor RMSprop, in place.
fn plain_step(c: &RmsPropConfig, p: &Tensor, grad: Tensor, s: &mut ParamState) {
    let grad = decayed_gradient(c, p, grad);
    // torch's addcmul_(g, g, value) computes (value·g)·g.
    let _ = s
        .square_avg
        .g_mul_scalar_(c.alpha)
        .addcmul_(&(&grad * (1.0 - c.alpha)), &grad);
    let avg = s.square_avg.sqrt().g_add_scalar_(c.eps);
    let mut p = p.shallow_clone();
    match &mut s.momentum_buffer {
        Some(buf) => {
            let _ = buf.g_mul_scalar_(c.momentum).addcdiv_(&grad, &avg);
            let _ = p.g_add_(&(&*buf * -c.lr));
        }
        // torch's addcdiv_(g, a, value) computes (value·g)/a.
        None => {
            let _ = p.addcdiv_(&(&grad * -c.lr), &avg);
        }
    }
}

/// [`plain_step`]'s arithmetic out of place, committed where `skip` is false.
fn masked_step(c: &RmsPropConfig, p: &Tensor, grad: Tensor, s: &mut ParamState, skip: &Tensor) {
    let grad = decayed_gradient(c, p, grad);
    let square_avg = (&s.square_avg * c.alpha).addcmul(&(&grad * (1.0 - c.alpha)), &grad);
    let avg = square_avg.sqrt() + c.eps;
    let skip = skip.reshape([]);
    let new_p = match &s.momentum_buffer {
        Some(buf) => {
            let new_buf = (buf * c.momentum).addcdiv(&grad, &avg);
            let new_p = p + &new_buf * -c.lr;
            buf.shallow_clone().copy_(&buf.where_self(&skip, &new_buf));
            new_p
        }
        None => p.addcdiv(&(&grad * -c.lr), &avg),
    };
    s.square_avg
        .shallow_clone()
        .copy_(&s.square_avg.where_self(&skip, &square_avg));
    p.shallow_clone().copy_(&p.where_self(&skip, &new_p));
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
        tch::no_grad(|| {
            for ((_, p), slot) in self.params.iter().zip(self.state.iter_mut()) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let s = slot.get_or_insert_with(|| ParamState {
                    square_avg: p.zeros_like(),
                    momentum_buffer: (c.momentum > 0.0).then(|| p.zeros_like()),
                });
                match skip {
                    None => plain_step(&c, p, grad, s),
                    Some(skip) => masked_step(&c, p, grad, s, skip),
                }
            }
        });
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for ((name, _), s) in self.params.iter().zip(&self.state) {
            if let Some(s) = s {
                out.push((state_name(SQUARE_AVG, name), s.square_avg.shallow_clone()));
                if let Some(buf) = &s.momentum_buffer {
                    out.push((state_name(MOMENTUM_BUFFER, name), buf.shallow_clone()));
                }
            }
        }
        out
    }

    fn load_state(&mut self, saved: Vec<(String, Tensor)>) -> Result<(), OptimizerStateError> {
        let with_momentum = self.config.momentum > 0.0;
        let slots = self.params.sort_state(saved, "RMSprop", SLOTS)?;
        let mut state = Vec::with_capacity(slots.len());
        for (i, slot) in slots.into_iter().enumerate() {
            let [square_avg, momentum_buffer]: [Option<Tensor>; 2] =
                slot.try_into().expect("one tensor per slot");
            let incomplete = |missing| OptimizerStateError::Incomplete {
                optimizer: "RMSprop",
                param: self.params.name(i).to_owned(),
                missing,
            };
            state.push(match (square_avg, momentum_buffer) {
                (None, None) => None,
                (None, Some(_)) => return Err(incomplete(SQUARE_AVG)),
                (Some(_), None) if with_momentum => return Err(incomplete(MOMENTUM_BUFFER)),
                (Some(square_avg), buf) => Some(ParamState {
                    square_avg,
                    // A buffer without momentum would never be read: a
                    // checkpoint of another configuration.
                    momentum_buffer: if with_momentum {
                        buf
                    } else if buf.is_some() {
                        return Err(OptimizerStateError::ForeignState {
                            name: state_name(MOMENTUM_BUFFER, self.params.name(i)),
                            optimizer: "RMSprop without momentum",
                            expected: &[SQUARE_AVG],
                        });
                    } else {
                        None
                    },
                }),
            });
        }
        self.state = state;
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
