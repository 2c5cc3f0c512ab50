//! `train bench-step`: samples/s of one LunaModel training step
//! (forward + backward + SGD) on random input, the figure to hold against
//! the same step in PyTorch (`scripts/bench/torch_train_step.py`).

use std::time::Instant;

use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use crate::model::{forward_batch, BiasInit, LunaModel, INPUT_SHAPE};
use crate::optim::Sgd;

#[derive(Debug, Serialize)]
pub struct StepFigure {
    pub batch_size: usize,
    pub steps: usize,
    pub seconds: f64,
    pub samples_per_s: f64,
    pub threads: i32,
    pub device: String,
}

/// Times `steps` steps after `warmup` untimed ones, per batch size. The
/// values do not matter to the cost, so the input is random, like the
/// PyTorch baseline's.
pub fn run(batch_sizes: &[usize], steps: usize, warmup: usize, device: Device) -> Vec<StepFigure> {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = LunaModel::new(&vs.root(), BiasInit::Book);
    let mut sgd = Sgd::new(&vs, 0.001, 0.99);
    let [d, h, w] = INPUT_SHAPE;
    batch_sizes
        .iter()
        .map(|&batch| {
            let x = Tensor::randn([batch as i64, 1, d, h, w], (Kind::Float, device));
            let y = Tensor::randint(2, [batch as i64], (Kind::Int64, device));
            let mut step = || {
                sgd.zero_grad();
                let out = forward_batch(&model, &x, &y, true);
                out.loss.mean(Kind::Float).backward();
                sgd.step();
            };
            for _ in 0..warmup {
                step();
            }
            sync(device);
            let t = Instant::now();
            for _ in 0..steps {
                step();
            }
            sync(device);
            let seconds = t.elapsed().as_secs_f64();
            StepFigure {
                batch_size: batch,
                steps,
                seconds,
                samples_per_s: (batch * steps) as f64 / seconds,
                threads: tch::get_num_threads(),
                device: format!("{device:?}"),
            }
        })
        .collect()
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}
