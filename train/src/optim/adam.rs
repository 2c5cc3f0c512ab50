//! Adam and AdamW with `torch.optim` semantics (amsgrad off, not maximizing).
//!
//! Per parameter with a gradient `g`, at step `t` (counted per parameter,
//! from 1):
//! - Adam: L2 decay into the gradient, `g += weight_decay·p`;
//!   AdamW: decoupled decay, `p *= 1 − lr·weight_decay`;
//! - `m = lerp(m, g, 1 − β1)`, `v = β2·v + (1 − β2)·g²`;
//! - `p −= lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)` (eps outside the root).
//!
//! AdamW is Adam with the other decay (as in torch, where `AdamW` is `Adam`
//! with `decoupled_weight_decay=True`), so one type serves both.
//!
//! Plain steps follow torch's default (non-capturable) arithmetic, with the
//! bias corrections computed on the host from the step count. A step that
//! the loss scaler may skip cannot know its count on the host, so it keeps
//! the count on the device and computes as torch's `capturable=True` does;
//! the two agree to rounding. Checkpoints hold `exp_avg.<param>`,
//! `exp_avg_sq.<param>` and `step.<param>` (a float scalar, as torch's).

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use torch_ext::{AdamStep, AdamTensors};

use super::params::{state_name, OptimizerStateError, Params, STEP_SLOT};
use super::slots::{commit, fusable, SlotState};
use super::Optimize;

const EXP_AVG: &str = "exp_avg";
const EXP_AVG_SQ: &str = "exp_avg_sq";
const SLOTS: &[&str] = &[EXP_AVG, EXP_AVG_SQ, STEP_SLOT];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW.
    pub decoupled_weight_decay: bool,
}

pub struct Adam {
    config: AdamConfig,
    params: Params,
    /// `exp_avg`, `exp_avg_sq` and the step count (a 0-dim float on the
    /// parameter's device) per parameter.
    state: SlotState,
    /// The step count per parameter on the host while it is known there
    /// (not after a step the device may have skipped).
    host_steps: Vec<Option<u64>>,
    /// Skippable steps run torch's fused kernel where the tensors allow.
    fused: bool,
}

impl Adam {
    pub fn new(vs: &VarStore, config: AdamConfig) -> Self {
        let params = Params::trainable(vs);
        let name = name(&config);
        Adam {
            config,
            state: SlotState::new(name, SLOTS, &params),
            host_steps: vec![Some(0); params.len()],
            params,
            fused: true,
        }
    }

    /// A skippable step as torch's `Adam(fused=True)` under a `GradScaler`:
    /// one kernel over every parameter, skipped on the device. False (and
    /// nothing done) where the tensors do not allow it; see [`fusable`].
    fn fused_update(&mut self, skip: &Tensor) -> bool {
        let mut lists: [Vec<Tensor>; 5] = Default::default();
        let host_steps = &mut self.host_steps;
        self.state
            .step_each(&self.params, zero_state, |i, p, grad, slots, _| {
                for (list, t) in lists
                    .iter_mut()
                    .zip([p, &grad, &slots[0], &slots[1], &slots[2]])
                {
                    list.push(t.shallow_clone());
                }
                host_steps[i] = None;
            });
        let [params, grads, exp_avgs, exp_avg_sqs, steps] = &lists;
        if !fusable(params, &[grads, exp_avgs, exp_avg_sqs]) {
            return false;
        }
        let c = &self.config;
        let step = AdamStep {
            lr: c.lr,
            beta1: c.betas[0],
            beta2: c.betas[1],
            weight_decay: c.weight_decay,
            eps: c.eps,
            decoupled_weight_decay: c.decoupled_weight_decay,
        };
        let tensors = AdamTensors {
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            steps,
        };
        let found_inf = skip.to_kind(Kind::Float).reshape([]);
        tch::no_grad(|| torch_ext::fused_adam_(&tensors, &step, Some(&found_inf)))
            .unwrap_or_else(|e| panic!("fused Adam step: {e}"));
        true
    }
}

fn name(c: &AdamConfig) -> &'static str {
    if c.decoupled_weight_decay {
        "AdamW"
    } else {
        "Adam"
    }
}

fn zero_state(p: &Tensor) -> Vec<Tensor> {
    vec![
        p.zeros_like(),
        p.zeros_like(),
        Tensor::zeros([], (Kind::Float, p.device())),
    ]
}

/// torch's single-tensor Adam out of place, committed unless `skip`. With
/// step `t` known on the host, torch's default arithmetic (bias corrections
/// computed on the host); else its `capturable=True` arithmetic, with the
/// step count and the bias corrections on the device.
fn adam_step(
    c: &AdamConfig,
    p: &Tensor,
    grad: Tensor,
    slots: &[Tensor],
    t: Option<u64>,
    skip: Option<&Tensor>,
) {
    let [beta1, beta2] = c.betas;
    let [exp_avg, exp_avg_sq, step] = slots else {
        unreachable!("Adam declares three slots")
    };
    let new_step = step + 1.0;
    let param = if c.weight_decay != 0.0 && c.decoupled_weight_decay {
        p * (1.0 - c.lr * c.weight_decay)
    } else {
        p.shallow_clone()
    };
    // L2 weight decay folded into the gradient (Adam only).
    let grad = if c.weight_decay != 0.0 && !c.decoupled_weight_decay {
        &grad + &(p * c.weight_decay)
    } else {
        grad
    };
    let new_exp_avg = exp_avg.lerp(&grad, 1.0 - beta1);
    // torch's addcmul_(g, g, value) computes (value·g)·g.
    let new_exp_avg_sq = (exp_avg_sq * beta2).addcmul(&(&grad * (1.0 - beta2)), &grad);
    let new_p = match t {
        Some(t) => {
            let t = t as f64;
            let step_size = c.lr / (1.0 - beta1.powf(t));
            let bias_correction2_sqrt = (1.0 - beta2.powf(t)).sqrt();
            let denom = new_exp_avg_sq.sqrt() / bias_correction2_sqrt + c.eps;
            // torch's addcdiv_(m, d, value) computes (value·m)/d.
            param.addcdiv(&(&new_exp_avg * -step_size), &denom)
        }
        None => {
            let bias_correction1: Tensor = 1.0 - Tensor::pow_scalar(beta1, &new_step);
            let bias_correction2: Tensor = 1.0 - Tensor::pow_scalar(beta2, &new_step);
            let step_size_neg: Tensor = -(bias_correction1.full_like(c.lr) / &bias_correction1);
            let denom = new_exp_avg_sq.sqrt() / (bias_correction2.sqrt() * &step_size_neg)
                + bias_correction1.full_like(c.eps) / &step_size_neg;
            param.addcdiv(&new_exp_avg, &denom)
        }
    };
    commit(step, &new_step, skip);
    commit(exp_avg, &new_exp_avg, skip);
    commit(exp_avg_sq, &new_exp_avg_sq, skip);
    commit(p, &new_p, skip);
}

/// The step count a restored `step.<param>` holds: a whole number below
/// 2^24 (exact in a float).
fn step_count(step: &Tensor, param: &str) -> Result<u64, OptimizerStateError> {
    let count = step.double_value(&[]);
    if !(count >= 0.0 && count.fract() == 0.0 && count < f64::from(1u32 << 24)) {
        return Err(OptimizerStateError::BadStepCount {
            name: state_name(STEP_SLOT, param),
            value: count,
        });
    }
    Ok(count as u64)
}

impl Optimize for Adam {
    fn name(&self) -> &'static str {
        name(&self.config)
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn update(&mut self, skip: Option<&Tensor>) {
        if let Some(skip) = skip.filter(|_| self.fused) {
            if self.fused_update(skip) {
                return;
            }
        }
        let c = self.config;
        let host_steps = &mut self.host_steps;
        self.state
            .step_each(&self.params, zero_state, |i, p, grad, slots, _| {
                // A step the device may skip leaves the count unknown here.
                let t = host_steps[i].filter(|_| skip.is_none()).map(|t| t + 1);
                adam_step(&c, p, grad, slots, t, skip);
                host_steps[i] = t;
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
        let state = self.state.restored(&self.params, saved)?;
        let mut host_steps = Vec::with_capacity(self.params.len());
        for i in 0..self.params.len() {
            host_steps.push(match state.get(i) {
                Some(slots) => Some(step_count(&slots[2], self.params.name(i))?),
                None => Some(0),
            });
        }
        self.state = state;
        self.host_steps = host_steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{backward, one_weight, values, GRADS};
    use tch::Device;

    /// Adam over [`one_weight`], its gradients [`GRADS`].
    fn setup(decoupled: bool) -> (VarStore, Tensor, Adam) {
        let (vs, w) = one_weight();
        let adam = Adam::new(
            &vs,
            AdamConfig {
                lr: 0.01,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled_weight_decay: decoupled,
            },
        );
        (vs, w, adam)
    }

    /// torch's recurrence in f64, for `steps` of [`GRADS`].
    fn reference(decoupled: bool, steps: usize) -> [f64; 3] {
        let (lr, b1, b2, eps, wd) = (0.01, 0.9f64, 0.999f64, 1e-8, 0.1);
        let (mut p, mut m, mut v) = ([1.0f64; 3], [0.0f64; 3], [0.0f64; 3]);
        for (t, g) in GRADS.iter().take(steps).enumerate() {
            let t = (t + 1) as f64;
            for k in 0..3 {
                let mut d = g[k] as f64;
                if decoupled {
                    p[k] *= 1.0 - lr * wd;
                } else {
                    d += wd * p[k];
                }
                m[k] = b1 * m[k] + (1.0 - b1) * d;
                v[k] = b2 * v[k] + (1.0 - b2) * d * d;
                let denom = v[k].sqrt() / (1.0 - b2.powf(t)).sqrt() + eps;
                p[k] -= lr / (1.0 - b1.powf(t)) * m[k] / denom;
            }
        }
        p
    }

    fn assert_close(got: &[f32], expected: &[f64], what: &str) {
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (*g as f64 - e).abs() < 1e-6,
                "{what}: {got:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn adam_and_adamw_follow_the_torch_recurrence_on_every_path() {
        let no_skip = Tensor::from_slice(&[false]);
        for decoupled in [false, true] {
            let (_vs, w, mut plain) = setup(decoupled);
            // Skippable steps, through torch's fused kernel and through the mask.
            let (_vs2, w2, mut fused) = setup(decoupled);
            let (_vs3, w3, mut masked) = setup(decoupled);
            masked.fused = false;
            for (i, g) in GRADS.iter().enumerate() {
                plain.zero_grad();
                backward(&w, g);
                plain.step();
                for (opt, w) in [(&mut fused, &w2), (&mut masked, &w3)] {
                    opt.zero_grad();
                    backward(w, g);
                    opt.step_unless(&no_skip);
                }
                let expected = reference(decoupled, i + 1);
                assert_close(&values(&w), &expected, "host path");
                assert_close(&values(&w2), &expected, "fused path");
                assert_close(&values(&w3), &expected, "masked path");
            }
            for opt in [&plain, &fused, &masked] {
                let state = opt.state();
                let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names, ["exp_avg.w", "exp_avg_sq.w", "step.w"]);
                assert_eq!(state[2].1.double_value(&[]), 4.0);
            }
        }
    }

    #[test]
    fn a_skipped_step_changes_nothing_not_even_the_step_count() {
        for fused in [true, false] {
            skipped_steps_change_nothing(fused);
        }
    }

    fn skipped_steps_change_nothing(fused: bool) {
        let (skip, go) = (Tensor::from_slice(&[true]), Tensor::from_slice(&[false]));
        let (_vs, w, mut adam) = setup(false);
        adam.fused = fused;
        let (_vs_ref, w_ref, mut reference) = setup(false);
        reference.fused = fused;
        adam.zero_grad();
        backward(&w, &GRADS[0]);
        adam.step_unless(&skip);
        assert_eq!(values(&w), vec![1.0; 3]);
        for (i, g) in GRADS.iter().enumerate() {
            adam.zero_grad();
            backward(&w, g);
            adam.step_unless(&go);
            let before: Vec<Vec<f32>> = adam
                .state()
                .iter()
                .map(|(_, t)| values(&t.reshape([-1])))
                .collect();
            let w_before = values(&w);
            adam.zero_grad();
            backward(&w, &[f32::INFINITY, f32::NAN, 1.0]);
            adam.step_unless(&skip);
            let after: Vec<Vec<f32>> = adam
                .state()
                .iter()
                .map(|(_, t)| values(&t.reshape([-1])))
                .collect();
            assert_eq!(before, after, "state changed by skipped step {i}");
            assert_eq!(values(&w), w_before);

            reference.zero_grad();
            backward(&w_ref, g);
            reference.step_unless(&go);
            assert_eq!(values(&w), values(&w_ref), "step {i}, fused {fused}");
        }
    }

    #[test]
    fn restored_state_continues_the_same_trajectory() {
        let (_vs_a, w_a, mut a) = setup(true);
        for g in &GRADS[..2] {
            a.zero_grad();
            backward(&w_a, g);
            a.step();
        }
        let (_vs_b, w_b, mut b) = setup(true);
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
        assert_close(&values(&w_b), &reference(true, 4), "restored");
    }

    #[test]
    fn rejects_incomplete_or_foreign_state() {
        let (_vs, _w, mut adam) = setup(false);
        let zeros = || Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let err = adam
            .load_state(vec![("exp_avg.w".into(), zeros())])
            .unwrap_err();
        assert!(
            matches!(&err, OptimizerStateError::Incomplete { missing, .. } if *missing == EXP_AVG_SQ),
            "{err}"
        );
        let err = adam
            .load_state(vec![("momentum.w".into(), zeros())])
            .unwrap_err();
        assert!(err.to_string().contains("another optimizer"), "{err}");
        let err = adam
            .load_state(vec![
                ("exp_avg.w".into(), zeros()),
                ("exp_avg_sq.w".into(), zeros()),
                ("step.w".into(), Tensor::from(2.5f32)),
            ])
            .unwrap_err();
        assert!(
            matches!(err, OptimizerStateError::BadStepCount { .. }),
            "{err}"
        );
        let err = adam
            .load_state(vec![("step.w".into(), zeros())])
            .unwrap_err();
        assert!(
            matches!(err, OptimizerStateError::ShapeMismatch { .. }),
            "{err}"
        );
    }
}
