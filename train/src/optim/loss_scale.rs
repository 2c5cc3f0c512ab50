//! Dynamic loss scaling for fp16 training, with `torch.amp.GradScaler`'s
//! behaviour and defaults: the loss is multiplied by `scale` (initially
//! 2^16) before backward; the gradients are divided by it again; a step whose
//! gradients hold an inf or NaN is skipped and the scale halves; after 2,000
//! steps in a row without one, the scale doubles.
//!
//! Unlike PyTorch's `scaler.step`, nothing here reads a value back to the
//! host: the overflow flag, the skip and the scale update all stay on the
//! device (the skip is a masked update, see [`Optimize::step_unless`]), so an
//! fp16 step costs no synchronisation.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::Optimize;

pub const INIT_SCALE: f64 = 65536.0;
pub const GROWTH_FACTOR: f64 = 2.0;
pub const BACKOFF_FACTOR: f64 = 0.5;
pub const GROWTH_INTERVAL: i64 = 2000;

/// What a checkpoint keeps of a [`LossScaler`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaleState {
    pub scale: f64,
    /// Finite steps in a row since the scale last changed.
    pub growth_tracker: i64,
}

pub struct LossScaler {
    /// `[1]` float on the device, as `_amp_update_scale_` wants it.
    scale: Tensor,
    /// `[1]` int32 on the device.
    growth_tracker: Tensor,
}

impl LossScaler {
    pub fn new(device: Device) -> Self {
        Self::from_state(
            LossScaleState {
                scale: INIT_SCALE,
                growth_tracker: 0,
            },
            device,
        )
    }

    pub fn from_state(state: LossScaleState, device: Device) -> Self {
        LossScaler {
            scale: Tensor::from_slice(&[state.scale as f32]).to_device(device),
            growth_tracker: Tensor::from_slice(&[state.growth_tracker as i32]).to_device(device),
        }
    }

    /// Reads the state back (a host synchronisation: for checkpoints only).
    pub fn state(&self) -> LossScaleState {
        LossScaleState {
            scale: self.scale.double_value(&[0]),
            growth_tracker: self.growth_tracker.int64_value(&[0]),
        }
    }

    /// `loss · scale`, to call backward on.
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale.to_kind(loss.kind())
    }

    /// Unscales the gradients of `optimizer`'s parameters, steps unless one
    /// of them is not finite, then updates the scale. Returns the device's
    /// "skipped" flag (`[1]` float, 1.0 when the step was skipped); reading
    /// it is the caller's choice.
    pub fn step(&mut self, optimizer: &mut impl Optimize) -> Tensor {
        let found_inf = tch::no_grad(|| unscale(&optimizer.gradients(), &self.scale));
        optimizer.step_unless(&found_inf.to_kind(Kind::Bool));
        tch::no_grad(|| {
            let _ = self.scale.internal_amp_update_scale_(
                &self.growth_tracker,
                &found_inf,
                GROWTH_FACTOR,
                BACKOFF_FACTOR,
                GROWTH_INTERVAL,
            );
        });
        found_inf
    }
}

/// Divides every gradient by `scale` in place; returns `[1]` float, 1.0
/// when any of them holds an inf or NaN. One fused foreach kernel (what
/// `GradScaler.unscale_` runs) rather than a multiply, an `isfinite` and a
/// reduction per tensor.
fn unscale(grads: &[Tensor], scale: &Tensor) -> Tensor {
    let inv_scale = scale.reciprocal();
    let mut found_inf = Tensor::zeros([1], (Kind::Float, scale.device()));
    // The op checks each tensor as it goes: what it would refuse (another
    // device, a non-float gradient) takes the per-tensor path instead of
    // failing halfway through the list.
    let fusable = grads
        .iter()
        .all(|g| g.device() == scale.device() && g.is_floating_point());
    if fusable {
        torch_ext::non_finite_check_and_unscale_(grads, &mut found_inf, &inv_scale)
            .unwrap_or_else(|e| panic!("fused gradient unscale: {e}"));
        return found_inf;
    }
    for grad in grads {
        let _ = grad.shallow_clone().g_mul_(&inv_scale.to_kind(grad.kind()));
        let bad = grad.isfinite().logical_not().any().to_kind(Kind::Float);
        found_inf = found_inf.maximum(&bad.reshape([1]));
    }
    found_inf
}

/// Backward on `loss`, scaled by `scaler` when there is one (fp16).
pub fn backward(loss: &Tensor, scaler: Option<&LossScaler>) {
    match scaler {
        Some(scaler) => scaler.scale(loss).backward(),
        None => loss.backward(),
    }
}

/// One optimizer step after [`backward`], through `scaler` when there is
/// one. The skipped-step flag stays on the device: no host sync.
pub fn step(optimizer: &mut impl Optimize, scaler: Option<&mut LossScaler>) {
    match scaler {
        Some(scaler) => {
            let _ = scaler.step(optimizer);
        }
        None => optimizer.step(),
    }
}

/// [`backward`] then [`step`].
pub fn backward_and_step(
    loss: &Tensor,
    optimizer: &mut impl Optimize,
    scaler: Option<&mut LossScaler>,
) {
    backward(loss, scaler.as_deref());
    step(optimizer, scaler);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Sgd;
    use tch::nn::{self, VarStore};

    fn setup() -> (VarStore, Tensor, Sgd) {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
        let sgd = Sgd::new(&vs, 0.1, 0.9);
        (vs, w, sgd)
    }

    /// loss = sum(w · x) · scale, backward: the gradient is x · scale.
    fn scaled_backward(scaler: &LossScaler, w: &Tensor, x: &[f32]) {
        scaler
            .scale(&(w * Tensor::from_slice(x)).sum(Kind::Float))
            .backward();
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t).unwrap()
    }

    #[test]
    fn finite_steps_equal_unscaled_sgd_and_infinite_ones_are_skipped() {
        let (_vs, w, mut sgd) = setup();
        let mut scaler = LossScaler::new(Device::Cpu);
        let (_vs_ref, w_ref, mut reference) = setup();

        // A finite step: exactly the plain SGD step on the unscaled gradient.
        sgd.zero_grad();
        scaled_backward(&scaler, &w, &[1.0, 2.0, -1.0]);
        let skipped = scaler.step(&mut sgd);
        assert_eq!(skipped.double_value(&[0]), 0.0);
        reference.zero_grad();
        (&w_ref * Tensor::from_slice(&[1.0f32, 2.0, -1.0]))
            .sum(Kind::Float)
            .backward();
        reference.step();
        assert_eq!(values(&w), values(&w_ref));
        assert_eq!(scaler.state().scale, INIT_SCALE);
        assert_eq!(scaler.state().growth_tracker, 1);

        // An overflow: weights and momentum untouched, scale halved, tracker reset.
        let before = values(&w);
        let buffers_before = values(&sgd.momentum_buffers()[0].1);
        sgd.zero_grad();
        scaled_backward(&scaler, &w, &[f32::INFINITY, 1.0, 1.0]);
        let skipped = scaler.step(&mut sgd);
        assert_eq!(skipped.double_value(&[0]), 1.0);
        assert_eq!(values(&w), before);
        assert_eq!(values(&sgd.momentum_buffers()[0].1), buffers_before);
        assert_eq!(
            scaler.state(),
            LossScaleState {
                scale: INIT_SCALE * BACKOFF_FACTOR,
                growth_tracker: 0
            }
        );

        // A NaN is an overflow too.
        sgd.zero_grad();
        scaled_backward(&scaler, &w, &[f32::NAN, 1.0, 1.0]);
        let _ = scaler.step(&mut sgd);
        assert_eq!(values(&w), before);
        assert_eq!(
            scaler.state().scale,
            INIT_SCALE * BACKOFF_FACTOR * BACKOFF_FACTOR
        );

        // The next finite step continues exactly where plain SGD would have.
        sgd.zero_grad();
        scaled_backward(&scaler, &w, &[0.5, 0.5, 0.5]);
        let _ = scaler.step(&mut sgd);
        reference.zero_grad();
        (&w_ref * Tensor::from_slice(&[0.5f32, 0.5, 0.5]))
            .sum(Kind::Float)
            .backward();
        reference.step();
        assert_eq!(values(&w), values(&w_ref));
    }

    #[test]
    fn a_skipped_first_step_leaves_no_momentum_behind() {
        let (_vs, w, mut sgd) = setup();
        let mut scaler = LossScaler::new(Device::Cpu);
        sgd.zero_grad();
        scaled_backward(&scaler, &w, &[f32::INFINITY, 0.0, 0.0]);
        let _ = scaler.step(&mut sgd);
        assert_eq!(values(&w), vec![1.0; 3]);
        // PyTorch keeps no buffer after a skipped first step; the next step
        // then starts one from its gradient. A zero buffer gives the same.
        sgd.zero_grad();
        scaled_backward(&scaler, &w, &[1.0, 1.0, 1.0]);
        let _ = scaler.step(&mut sgd);
        let expected = 1.0 - 0.1;
        assert!(
            values(&w).iter().all(|&v| (v - expected).abs() < 1e-7),
            "{:?}",
            values(&w)
        );
    }

    #[test]
    fn the_scale_grows_after_the_interval_and_survives_a_checkpoint() {
        let state = LossScaleState {
            scale: 1024.0,
            growth_tracker: GROWTH_INTERVAL - 1,
        };
        let (_vs, w, mut sgd) = setup();
        let mut scaler = LossScaler::from_state(state, Device::Cpu);
        assert_eq!(scaler.state(), state);
        sgd.zero_grad();
        scaled_backward(&scaler, &w, &[1.0, 1.0, 1.0]);
        let _ = scaler.step(&mut sgd);
        assert_eq!(
            scaler.state(),
            LossScaleState {
                scale: 2048.0,
                growth_tracker: 0
            }
        );
    }
}
