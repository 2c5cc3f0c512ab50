//! bf16 autocast and channels-last on real cached crops: the same losses as
//! fp32/contiguous within stated tolerances, fp32 gradients and weights,
//! and checkpoints that load under any mode. On a CPU without native bf16
//! (CI may be one) libtorch emulates bf16: slower, and these tests still hold.

use std::sync::Arc;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::config::{ComputeConfig, MemoryFormat, Precision};
use train::data::loader::{Loader, LoaderConfig};
use train::model::{forward_batch_with, prepare_weights, BiasInit, LunaModel};

use crate::pytorch_support::build_cache;

/// One batch of 8 real cached crops (float HU) and their labels.
fn batch() -> (Tensor, Tensor) {
    let dir = tempfile::tempdir().unwrap();
    let reader = Arc::new(build_cache(dir.path(), 2, 4));
    let mut loader = Loader::new(
        reader,
        LoaderConfig {
            batch_size: 8,
            num_workers: 1,
            device: Device::Cpu,
        },
    );
    let mut out = None;
    loader
        .run_epoch::<train::data::loader::LoaderError>(&(0..8).collect::<Vec<u32>>(), |b| {
            out = Some((b.images.to_kind(Kind::Float), b.labels.shallow_clone()));
            Ok(())
        })
        .unwrap();
    out.unwrap()
}

fn mode(precision: Precision, memory_format: MemoryFormat) -> ComputeConfig {
    ComputeConfig {
        precision,
        memory_format,
    }
}

/// Loss and the gradient of the first conv of one training step under `compute`.
fn step(compute: ComputeConfig, x: &Tensor, y: &Tensor) -> (f64, Tensor, Kind) {
    tch::manual_seed(4);
    let vs = VarStore::new(Device::Cpu);
    let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    prepare_weights(&vs, compute);
    let out = forward_batch_with(&model, x.shallow_clone(), y, true, compute);
    let loss = out.loss.mean(Kind::Float);
    loss.backward();
    let w = &vs.variables()["block1.conv1.weight"];
    (loss.double_value(&[]), w.grad().contiguous(), w.kind())
}

#[test]
fn bf16_and_channels_last_steps_match_fp32_within_tolerance() {
    let (x, y) = batch();
    let (loss32, grad32, _) = step(mode(Precision::Fp32, MemoryFormat::Contiguous), &x, &y);
    // The same arithmetic in another layout: equal up to summation order.
    let (loss_cl, grad_cl, _) = step(mode(Precision::Fp32, MemoryFormat::ChannelsLast), &x, &y);
    assert!(
        (loss_cl - loss32).abs() <= 1e-4 * loss32.abs().max(1.0),
        "{loss_cl} vs {loss32}"
    );
    assert!(grad_cl.allclose(&grad32, 1e-3, 1e-5, false));
    // bf16 keeps 8 bits of mantissa: losses agree to about 2%.
    let (loss16, grad16, kind) = step(mode(Precision::Bf16, MemoryFormat::ChannelsLast), &x, &y);
    assert!(
        (loss16 - loss32).abs() <= 0.02 * loss32.abs().max(1.0),
        "bf16 loss {loss16} vs fp32 {loss32}"
    );
    assert_eq!(kind, Kind::Float, "master weights must stay fp32");
    assert_eq!(grad16.kind(), Kind::Float);
    let finite = grad16.isfinite().all().int64_value(&[]) == 1;
    assert!(finite, "bf16 gradients are not finite");
    // Directions agree even where single values differ.
    let cos = (&grad16 * &grad32).sum(Kind::Float).double_value(&[])
        / (grad16.norm().double_value(&[]) * grad32.norm().double_value(&[]));
    assert!(cos > 0.95, "gradient cosine {cos}");
}

#[test]
fn fp16_on_the_cpu_and_bad_names_are_one_line_errors() {
    let err = mode(Precision::Fp16, MemoryFormat::Auto)
        .resolve(Device::Cpu)
        .unwrap_err();
    assert!(
        err.contains("--precision fp16") && !err.contains('\n'),
        "{err}"
    );
    let (ok, text) = luna_e2e::train::train_output(&["--precision", "fp8", "--cache", "x"]);
    assert!(!ok && text.contains("fp8"), "{text}");
}
