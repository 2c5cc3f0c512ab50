//! `train bench-step`: samples/s of one LunaModel training step
//! (forward + backward + SGD) on random input, and optionally of inference,
//! the figures to hold against the same step in PyTorch
//! (`scripts/bench/torch_train_step.py`).

use std::time::Instant;

use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use crate::config::ComputeConfig;
use crate::model::{forward_batch_with, prepare_weights, BiasInit, LunaModel, INPUT_SHAPE};
use crate::optim::{backward_and_step, LossScaler, Optimize, Sgd};

#[derive(Debug, Serialize)]
pub struct StepFigure {
    /// `luna` (LunaModel) or `unet` (the chapter 13 U-Net).
    pub model: &'static str,
    /// `train` (forward + backward + SGD) or `inference` (eval, no autograd).
    pub mode: &'static str,
    pub batch_size: usize,
    pub steps: usize,
    pub seconds: f64,
    pub samples_per_s: f64,
    pub threads: i32,
    pub device: String,
    pub precision: String,
}

/// What to time.
pub struct StepBench<'a> {
    /// `luna` or `unet`, as the figures name it.
    pub model: &'static str,
    pub batch_sizes: &'a [usize],
    pub steps: usize,
    pub warmup: usize,
    pub device: Device,
    /// Resolved modes.
    pub compute: ComputeConfig,
    pub inference: bool,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times `steps` calls of `step` after `warmup` untimed ones.
pub(super) fn time(
    bench: &StepBench,
    batch: usize,
    mode: &'static str,
    mut step: impl FnMut(),
) -> StepFigure {
    for _ in 0..bench.warmup {
        step();
    }
    sync(bench.device);
    let t = Instant::now();
    for _ in 0..bench.steps {
        step();
    }
    sync(bench.device);
    let seconds = t.elapsed().as_secs_f64();
    StepFigure {
        model: bench.model,
        mode,
        batch_size: batch,
        steps: bench.steps,
        seconds,
        samples_per_s: (batch * bench.steps) as f64 / seconds,
        threads: tch::get_num_threads(),
        device: format!("{:?}", bench.device),
        precision: bench.compute.describe(),
    }
}

/// One figure per batch size (and per mode). The values do not matter to
/// the cost, so the input is random, like the PyTorch baseline's.
pub fn run(bench: &StepBench) -> Vec<StepFigure> {
    tch::manual_seed(0);
    let device = bench.device;
    let vs = nn::VarStore::new(device);
    let model = LunaModel::new(&vs.root(), BiasInit::Book);
    prepare_weights(&vs, bench.compute);
    let mut sgd = Sgd::new(&vs, 0.001, 0.99);
    let mut scaler = bench
        .compute
        .needs_loss_scaling()
        .then(|| LossScaler::new(device));
    let [d, h, w] = INPUT_SHAPE;
    let mut figures = Vec::new();
    for &batch in bench.batch_sizes {
        let x = Tensor::randn([batch as i64, 1, d, h, w], (Kind::Float, device));
        let y = Tensor::randint(2, [batch as i64], (Kind::Int64, device));
        figures.push(time(bench, batch, "train", || {
            sgd.zero_grad();
            let out = forward_batch_with(&model, x.shallow_clone(), &y, true, bench.compute);
            let loss = out.loss.mean(Kind::Float);
            backward_and_step(&loss, &mut sgd, scaler.as_mut());
        }));
        if bench.inference {
            let _no_grad = tch::no_grad_guard();
            figures.push(time(bench, batch, "inference", || {
                let out = forward_batch_with(&model, x.shallow_clone(), &y, false, bench.compute);
                // Reading one value waits for the batch, as a consumer would.
                let _ = out.prob_pos.double_value(&[0]);
            }));
        }
    }
    figures
}
