//! Channels-last is only a layout: the U-Net run through `segment_with`
//! with `--memory-format channels-last` (weights restrided by
//! `prepare_weights`, input converted) gives the contiguous run's
//! probabilities and gradients, in training and in eval mode.

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::model::compute::{ComputeConfig, MemoryFormat, Precision};
use train::model::seg_loss::segmentation_loss;
use train::model::{prepare_weights, segment_with, UNet, UNetConfig};

/// Float reassociation in oneDNN's NHWC kernels vs NCHW ones, nothing more.
const TOLERANCE: f64 = 1e-4;

fn fp32(memory_format: MemoryFormat) -> ComputeConfig {
    ComputeConfig {
        precision: Precision::Fp32,
        memory_format,
    }
}

/// A copy of `weights` in the given layout. Copied, not re-seeded: tests
/// run in parallel and share libtorch's generator.
fn model(weights: &VarStore, compute: ComputeConfig) -> (VarStore, UNet) {
    let mut vs = VarStore::new(Device::Cpu);
    let unet = UNet::new(&vs.root(), &UNetConfig::default());
    vs.copy(weights).unwrap();
    prepare_weights(&vs, compute);
    (vs, unet)
}

fn input() -> (Tensor, Tensor) {
    let x = Tensor::randn([3, 7, 32, 32], (Kind::Float, Device::Cpu)) * 400.0;
    let mask = Tensor::rand([3, 1, 32, 32], (Kind::Float, Device::Cpu)).gt(0.8);
    (x, mask)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Probabilities and every parameter's gradient after one training forward
/// and backward, then eval-mode probabilities.
fn run(
    weights: &VarStore,
    (x, mask): &(Tensor, Tensor),
    compute: ComputeConfig,
) -> (Tensor, Vec<Tensor>, Tensor, bool) {
    let (vs, unet) = model(weights, compute);
    let weights_cl = vs
        .variables()
        .values()
        .filter(|v| v.dim() == 4)
        .all(torch_ext::is_channels_last);
    let p = segment_with(&unet, x.copy(), true, compute);
    segmentation_loss(&p, mask).total.backward();
    // Batch norm's running statistics are variables without gradients.
    let mut names: Vec<_> = vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let grads = names.iter().map(|(_, v)| v.grad().contiguous()).collect();
    let eval = tch::no_grad(|| segment_with(&unet, x.copy(), false, compute));
    (p.contiguous(), grads, eval.contiguous(), weights_cl)
}

#[test]
fn unet_in_channels_last_equals_contiguous() {
    let weights = VarStore::new(Device::Cpu);
    let _ = UNet::new(&weights.root(), &UNetConfig::default());
    let data = input();
    let (p_c, g_c, e_c, _) = run(&weights, &data, fp32(MemoryFormat::Contiguous));
    let (p_l, g_l, e_l, weights_cl) = run(&weights, &data, fp32(MemoryFormat::ChannelsLast));
    assert!(weights_cl, "prepare_weights left a 4-D weight contiguous");
    assert!(
        max_abs_diff(&p_c, &p_l) < TOLERANCE,
        "training output differs"
    );
    assert!(max_abs_diff(&e_c, &e_l) < TOLERANCE, "eval output differs");
    assert_eq!(g_c.len(), g_l.len());
    for (a, b) in g_c.iter().zip(&g_l) {
        // Gradients scale with the parameter; compare relative to the largest.
        let scale = a.abs().max().double_value(&[]).max(1e-6);
        assert!(max_abs_diff(a, b) / scale < 1e-3, "a gradient differs");
    }
}
