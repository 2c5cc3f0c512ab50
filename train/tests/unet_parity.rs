//! The chapter 13 U-Net crosses between scripts/unet_model.py (the book's
//! `UNetWrapper` written out) and the Rust `UNet` both ways: the same
//! `state_dict` names and shapes, and the same eval-mode outputs.

use std::collections::BTreeMap;

use crate::pytorch_support::run_python;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::model::{UNet, UNetConfig};

const TOLERANCE: f64 = 1e-5;

/// The same `[2,7,64,64]` input in both languages: `sin(0.37 i) * 800`.
const INPUT_PY: &str =
    "(torch.arange(2 * 7 * 64 * 64, dtype=torch.float32) * 0.37).sin().mul(800.0).view(2, 7, 64, 64)";

fn input() -> Tensor {
    (Tensor::arange(2 * 7 * 64 * 64, (Kind::Float, Device::Cpu)) * 0.37).sin() * 800.0
}

fn book_model() -> (VarStore, UNet) {
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let model = UNet::new(&vs.root(), &UNetConfig::default());
    (vs, model)
}

fn shapes(vs: &VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect()
}

fn max_abs_diff(ours: &Tensor, theirs: &serde_json::Value) -> f64 {
    let ours = Vec::<f32>::try_from(ours.flatten(0, -1)).unwrap();
    let theirs: Vec<f64> = serde_json::from_value(theirs.clone()).unwrap();
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(&theirs)
        .map(|(&a, b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_books_unet_loads_in_rust_with_its_names_and_equal_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.safetensors");
    let script = format!(
        r#"
import json, sys, torch
from luna_model import save_safetensors
from unet_model import UNetWrapper
torch.manual_seed(3)
m = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True, batch_norm=True, up_mode="upconv")
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
m.train()
for _ in range(2):  # moves weights and every BatchNorm's running statistics
    p = m(torch.randn(2, 7, 64, 64) * 300.0 - 200.0)
    p.mean().backward()
    opt.step(); opt.zero_grad()
m.eval()
save_safetensors(m, sys.argv[1])
with torch.no_grad():
    out = m({INPUT_PY})
shapes = {{k: list(v.shape) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}}
print(json.dumps(dict(out=out.reshape(-1).tolist(), shape=list(out.shape), shapes=shapes)))
"#
    );
    let got = run_python(&script, &[path.as_os_str()]);
    let (mut vs, model) = book_model();
    let theirs: BTreeMap<String, Vec<i64>> = serde_json::from_value(got["shapes"].clone()).unwrap();
    assert_eq!(shapes(&vs), theirs, "state_dict names and shapes");
    vs.load(&path).unwrap();
    let out = tch::no_grad(|| model.forward_t(&input().view([2, 7, 64, 64]), false));
    assert_eq!(out.size(), [2, 1, 64, 64]);
    assert_eq!(got["shape"], serde_json::json!([2, 1, 64, 64]));
    let d = max_abs_diff(&out, &got["out"]);
    assert!(d < TOLERANCE, "outputs differ by {d}");
}

#[test]
fn a_rust_unet_loads_into_the_books_module_with_equal_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.safetensors");
    let (vs, model) = book_model();
    // A training-mode pass moves the running statistics off their defaults.
    let _ = model.forward_t(
        &(Tensor::randn([2, 7, 64, 64], (Kind::Float, Device::Cpu)) * 300.0),
        true,
    );
    vs.save(&path).unwrap();
    let ours = tch::no_grad(|| model.forward_t(&input().view([2, 7, 64, 64]), false));
    let script = format!(
        r#"
import json, sys, torch
from safetensors.torch import load_file
from unet_model import UNetWrapper
m = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True, batch_norm=True, up_mode="upconv")
missing, unexpected = m.load_state_dict(load_file(sys.argv[1]), strict=False)
m.eval()
with torch.no_grad():
    out = m({INPUT_PY})
print(json.dumps(dict(out=out.reshape(-1).tolist(), missing=missing, unexpected=unexpected)))
"#
    );
    let got = run_python(&script, &[path.as_os_str()]);
    assert_eq!(got["unexpected"], serde_json::json!([]));
    let missing: Vec<String> = serde_json::from_value(got["missing"].clone()).unwrap();
    assert!(
        missing.iter().all(|k| k.ends_with("num_batches_tracked")),
        "{missing:?}"
    );
    let d = max_abs_diff(&ours, &got["out"]);
    assert!(d < TOLERANCE, "outputs differ by {d}");
}

#[test]
fn weights_start_as_the_books_kaiming_fan_out_with_negative_mean_biases() {
    let (vs, _model) = book_model();
    let vars = vs.variables();
    // down_path.2's second conv: [64, 64, 3, 3], fan_out 64·9 = 576.
    let w = &vars["unet.down_path.2.block.3.weight"];
    let std = w.std(true).double_value(&[]);
    let expected = (2.0 / 576.0f64).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.05,
        "std {std} vs {expected}"
    );
    // A transposed conv's fan_out is its *input* channels: up_path.0.up is
    // [64, 32, 2, 2], fan_out 64·4 = 256.
    let up = &vars["unet.up_path.0.up.weight"];
    assert_eq!(up.size(), [64, 32, 2, 2]);
    let std = up.std(true).double_value(&[]);
    let expected = (2.0 / 256.0f64).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.1,
        "std {std} vs {expected}"
    );
    // Biases are N(−b, b), b = 1/√fan_out: the mean sits near −b.
    let b = &vars["unet.down_path.2.block.3.bias"];
    let mean = b.mean(Kind::Float).double_value(&[]);
    let bound = 1.0 / 576.0f64.sqrt();
    assert!(
        (mean + bound).abs() < 0.5 * bound,
        "bias mean {mean}, −b = {}",
        -bound
    );
}

/// A channels-last input takes the input BatchNorm in NCHW (libtorch's
/// channels-last kernels are slow with 7 channels) and comes back
/// channels-last: in training and eval, the outputs, the batch statistics
/// and the gradients equal those of the same input given contiguous.
#[test]
fn a_channels_last_input_gives_a_contiguous_ones_outputs_statistics_and_gradients() {
    // One set of weights for every run (the global seed is shared with
    // tests running beside this one).
    let (weights, _) = book_model();
    let run = |channels_last: bool, train: bool| {
        let mut vs = VarStore::new(Device::Cpu);
        let model = UNet::new(&vs.root(), &UNetConfig::default());
        vs.copy(&weights).unwrap();
        let x = input().view([2, 7, 64, 64]);
        let x = if channels_last {
            torch_ext::contiguous_channels_last(&x).unwrap()
        } else {
            x
        };
        assert_eq!(torch_ext::is_channels_last(&x), channels_last);
        let out = model.forward_t(&x, train);
        out.sum(Kind::Float).backward();
        let vars = vs.variables();
        let grad = |name: &str| vars[name].grad().copy();
        let stat = |name: &str| vars[name].copy();
        (
            out.detach(),
            grad("input_batchnorm.weight"),
            grad("unet.down_path.0.block.0.weight"),
            stat("input_batchnorm.running_mean"),
            stat("input_batchnorm.running_var"),
        )
    };
    for train in [true, false] {
        let (a, b) = (run(false, train), run(true, train));
        let diff = |x: &Tensor, y: &Tensor| (x - y).abs().max().double_value(&[]);
        let scale = |x: &Tensor| x.abs().max().double_value(&[]).max(1.0);
        for (what, x, y) in [
            ("output", &a.0, &b.0),
            ("input BatchNorm weight gradient", &a.1, &b.1),
            ("first conv weight gradient", &a.2, &b.2),
            ("running mean", &a.3, &b.3),
            ("running variance", &a.4, &b.4),
        ] {
            assert!(
                diff(x, y) <= 1e-4 * scale(x),
                "{what}, train {train}: {}",
                diff(x, y)
            );
        }
    }
}
