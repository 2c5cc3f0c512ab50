//! `train bench-step --model unet`: samples/s of one chapter 13 training
//! step (the book's U-Net on a batch of 64×64 windows, Dice + 8× false
//! negative Dice, Adam 1e-3) and slices/s of full-slice inference (eval
//! mode, no autograd, whole 512×512 slices), to hold against the same
//! in PyTorch (`scripts/bench/torch_seg_step.py`).
//!
//! Both run [`segment_with`], the forward pass `train seg` trains and
//! validates with, and the loss it backpropagates, so a layout or
//! precision change shows here exactly as it does in training.

use tch::{nn, Kind, Tensor};

use super::step::{time, StepBench, StepFigure};
use crate::model::seg_loss::segmentation_loss;
use crate::model::{prepare_weights, segment_with, UNet, UNetConfig};
use crate::optim::{
    backward_and_step, LossScaler, Optimize, Optimizer, OptimizerConfig, OptimizerKind,
};

/// Synthetic HU spread: the step's cost does not depend on the values, but
/// values of CT's magnitude keep BatchNorm and the sigmoid in their usual range.
const HU_SCALE: f64 = 500.0;

/// The sizes of the segmentation figures.
#[derive(Clone, Copy, Debug)]
pub struct SegShape {
    /// Edge of the training windows (the book's 64).
    pub window: i64,
    /// Edge of the inference slices (LUNA's 512).
    pub size: i64,
    /// Slices per inference batch.
    pub infer_batch: usize,
}

/// The book's optimizer for the U-Net (`Adam(model.parameters())`).
fn book_adam() -> OptimizerConfig {
    OptimizerConfig {
        name: OptimizerKind::Adam,
        lr: 1e-3,
        ..OptimizerConfig::default()
    }
}

/// Random HU slices `[n, channels, edge, edge]` on the bench's device.
fn slices(bench: &StepBench, n: usize, channels: i64, edge: i64) -> Tensor {
    Tensor::randn(
        [n as i64, channels, edge, edge],
        (Kind::Float, bench.device),
    ) * HU_SCALE
}

/// One training figure per batch size, then (with `--inference`) one
/// full-slice inference figure; batch norm's statistics come from the
/// batch in training and from the running estimates in inference.
pub fn run(bench: &StepBench, shape: SegShape) -> Vec<StepFigure> {
    tch::manual_seed(0);
    let config = UNetConfig::default();
    let vs = nn::VarStore::new(bench.device);
    let model = UNet::new(&vs.root(), &config);
    prepare_weights(&vs, bench.compute);
    let mut adam = Optimizer::from_config(&vs, &book_adam());
    let mut scaler = bench
        .compute
        .needs_loss_scaling()
        .then(|| LossScaler::new(bench.device));
    let mut figures = Vec::new();
    for &batch in bench.batch_sizes {
        let x = slices(bench, batch, config.in_channels, shape.window);
        // ~10% nodule pixels, so both Dice terms have work to do.
        let mask = slices(bench, batch, 1, shape.window).gt(1.28 * HU_SCALE);
        figures.push(time(bench, batch, "train", || {
            adam.zero_grad();
            let prediction = segment_with(&model, x.shallow_clone(), true, bench.compute);
            let loss = segmentation_loss(&prediction, &mask);
            backward_and_step(&loss.total, &mut adam, scaler.as_mut());
        }));
    }
    if bench.inference {
        let x = slices(bench, shape.infer_batch, config.in_channels, shape.size);
        let _no_grad = tch::no_grad_guard();
        figures.push(time(bench, shape.infer_batch, "inference", || {
            let prediction = segment_with(&model, x.shallow_clone(), false, bench.compute);
            // Reading one value waits for the batch, as a consumer would.
            let _ = prediction.double_value(&[0, 0, 0, 0]);
        }));
    }
    figures
}
