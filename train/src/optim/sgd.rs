//! SGD with momentum, PyTorch semantics, with inspectable momentum buffers.
//!
//! tch's optimizer keeps its buffers inside libtorch where they cannot be
//! exported, and resuming a momentum-0.99 run without them is not a resume;
//! hence this small re-implementation over the VarStore tensors.
//!
//! Per parameter with a gradient `g` (dampening 0, no Nesterov): L2 weight
//! decay first, `g += weight_decay·p`; then `buf = g` on the first step,
//! `buf = momentum·buf + g` after; `p -= lr·buf`.

use std::collections::BTreeMap;

use tch::nn::VarStore;
use tch::Tensor;

pub struct Sgd {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    /// Trainable parameters by name, name-ordered so every run steps them alike.
    params: Vec<(String, Tensor)>,
    /// Momentum buffer per parameter, created on its first step.
    buffers: Vec<Option<Tensor>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SgdError {
    #[error("momentum buffer for unknown parameter {0:?}")]
    UnknownParameter(String),
    #[error("momentum buffer {name:?} has shape {found:?}, parameter has {expected:?}")]
    ShapeMismatch {
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
}

impl Sgd {
    pub fn new(vs: &VarStore, lr: f64, momentum: f64) -> Self {
        let params: BTreeMap<String, Tensor> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        let buffers = params.iter().map(|_| None).collect();
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            params: params.into_iter().collect(),
            buffers,
        }
    }

    /// Adds L2 weight decay (PyTorch's `weight_decay`: `g += wd·p`).
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut grad = p.grad();
            if grad.defined() {
                let _ = grad.detach_().zero_();
            }
        }
    }

    pub fn step(&mut self) {
        self.update(None);
    }

    /// [`Sgd::step`] where `skip` (a bool `[1]` tensor on the device) is
    /// false, no change at all where it is true: decided on the device, so a
    /// loss scaler can skip overflowing steps without reading a flag back.
    /// A skipped first step leaves a zero momentum buffer, which the next
    /// step turns into its gradient exactly as a missing one would be.
    pub fn step_unless(&mut self, skip: &Tensor) {
        self.update(Some(skip));
    }

    /// The gradients that exist, in parameter order (shallow clones).
    pub fn gradients(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect()
    }

    fn update(&mut self, skip: Option<&Tensor>) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let grad = if self.weight_decay != 0.0 {
                    &grad + &(p * self.weight_decay)
                } else {
                    grad
                };
                let Some(skip) = skip else {
                    let b = match buf {
                        Some(b) => {
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&grad);
                            b
                        }
                        None => buf.insert(grad.detach().copy()),
                    };
                    let _ = p.shallow_clone().g_add_(&(&*b * -self.lr));
                    continue;
                };
                // The same arithmetic as above (so equal bits when not
                // skipped), kept out of place until the mask picks.
                let b = buf.get_or_insert_with(|| p.zeros_like());
                let new_b = &*b * self.momentum + &grad;
                let new_p = p + &new_b * -self.lr;
                b.copy_(&b.where_self(skip, &new_b));
                p.shallow_clone().copy_(&p.where_self(skip, &new_p));
            }
        });
    }

    /// The buffers that exist so far (none before the first step), by parameter name.
    pub fn momentum_buffers(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .filter_map(|((name, _), b)| b.as_ref().map(|b| (name.clone(), b.shallow_clone())))
            .collect()
    }

    /// Restores buffers saved by [`Sgd::momentum_buffers`], copied onto each
    /// parameter's device.
    pub fn load_momentum_buffers(&mut self, saved: Vec<(String, Tensor)>) -> Result<(), SgdError> {
        for (name, tensor) in saved {
            let i = self
                .params
                .iter()
                .position(|(n, _)| *n == name)
                .ok_or_else(|| SgdError::UnknownParameter(name.clone()))?;
            let param = &self.params[i].1;
            if tensor.size() != param.size() {
                return Err(SgdError::ShapeMismatch {
                    name,
                    found: tensor.size(),
                    expected: param.size(),
                });
            }
            self.buffers[i] = Some(
                tensor
                    .to_device(param.device())
                    .to_kind(param.kind())
                    .detach(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// One parameter, loss = sum(w * x): the gradient is exactly x each step.
    fn setup() -> (VarStore, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
        (vs, w)
    }

    fn backward(w: &Tensor, x: &[f32]) {
        (w * Tensor::from_slice(x)).sum(Kind::Float).backward();
    }

    #[test]
    fn matches_pytorch_momentum_recurrence() {
        let (vs, w) = setup();
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
        let (vs, w) = setup();
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
    fn restored_buffers_continue_the_same_trajectory() {
        let (vs_a, w_a) = setup();
        let mut a = Sgd::new(&vs_a, 0.1, 0.9);
        for g in [[1.0f32, 1.0, 1.0], [2.0, 0.0, -1.0]] {
            a.zero_grad();
            backward(&w_a, &g);
            a.step();
        }
        let (vs_b, w_b) = setup();
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
        let (vs, _) = setup();
        let mut opt = Sgd::new(&vs, 0.1, 0.9);
        let err = opt.load_momentum_buffers(vec![(
            "w".into(),
            Tensor::zeros([4], (Kind::Float, Device::Cpu)),
        )]);
        assert!(matches!(err, Err(SgdError::ShapeMismatch { .. })));
        let err = opt.load_momentum_buffers(vec![(
            "v".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        )]);
        assert!(matches!(err, Err(SgdError::UnknownParameter(_))));
    }
}
