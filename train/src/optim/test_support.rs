//! What the optimizers' unit tests share: one parameter whose gradient is
//! exactly the vector it is given, and a gradient sequence.

use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

/// Four steps' gradients, with zeros and sign changes.
pub const GRADS: [[f32; 3]; 4] = [
    [1.0, 2.0, -1.0],
    [0.5, 0.0, 1.0],
    [-2.0, 1.0, 0.25],
    [0.1, -0.3, 3.0],
];

/// A store with one parameter `w` = [1, 1, 1].
pub fn one_weight() -> (VarStore, Tensor) {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
    (vs, w)
}

/// loss = sum(w · g), backward: the gradient of `w` is exactly `g`.
pub fn backward(w: &Tensor, g: &[f32]) {
    (w * Tensor::from_slice(g)).sum(Kind::Float).backward();
}

pub fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t).unwrap()
}
