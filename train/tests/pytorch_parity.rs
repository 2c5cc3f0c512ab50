//! Checkpoints cross between scripts/luna_model.py and the Rust LunaModel
//! both ways, and both compute the same eval-mode outputs on a fixed batch.

use crate::pytorch_support::{floats, input, run_python, INPUT_PY};
use tch::nn::VarStore;
use tch::{Device, Tensor};
use train::model::{BiasInit, LunaModel};
use train::optim::{Optimize, Sgd};
use train::run::checkpoint::{self, RunState};

const TOLERANCE: f64 = 1e-5;

fn max_abs_diff(ours: &Tensor, theirs: &[f64]) -> f64 {
    let ours = Vec::<f32>::try_from(ours.flatten(0, -1)).unwrap();
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .map(|(&a, b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn a_pytorch_written_model_loads_in_rust_with_equal_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let script = format!(
        r#"
import json, sys, torch
from luna_model import LunaModel, save_safetensors
torch.manual_seed(3)
m = LunaModel(bias_init="book")
opt = torch.optim.SGD(m.parameters(), lr=0.001, momentum=0.99)
m.train()
for _ in range(2):  # moves weights and BatchNorm's running statistics off their defaults
    logits, _ = m(torch.randn(2, 1, 32, 48, 48) * 300.0 - 200.0)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    opt.step(); opt.zero_grad()
m.eval()
save_safetensors(m, sys.argv[1])
with torch.no_grad():
    logits, probs = m({INPUT_PY})
print(json.dumps(dict(logits=logits.reshape(-1).tolist(), probs=probs.reshape(-1).tolist(),
                      running_mean=m.tail_batchnorm.running_mean.item())))
"#
    );
    let got = run_python(&script, &[path.as_os_str()]);

    tch::manual_seed(11);
    let mut vs = VarStore::new(Device::Cpu);
    let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    vs.load(&path).unwrap();
    let running_mean = vs.variables()["tail_batchnorm.running_mean"].double_value(&[0]);
    assert!(
        (running_mean - got["running_mean"].as_f64().unwrap()).abs() < 1e-6 && running_mean != 0.0,
        "running mean {running_mean}"
    );
    let (logits, probs) = tch::no_grad(|| model.forward(&input(), false));
    let d_logits = max_abs_diff(&logits, &floats(&got["logits"]));
    let d_probs = max_abs_diff(&probs, &floats(&got["probs"]));
    assert!(d_logits < TOLERANCE, "logits differ by {d_logits}");
    assert!(d_probs < TOLERANCE, "probabilities differ by {d_probs}");
}

#[test]
fn a_rust_written_checkpoint_loads_in_pytorch_with_equal_outputs() {
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    let mut sgd = Sgd::new(&vs, 0.001, 0.99);
    for step in 0..2i64 {
        sgd.zero_grad();
        let x = Tensor::randn([2, 1, 32, 48, 48], (tch::Kind::Float, Device::Cpu)) * 300.0;
        let (logits, _) = model.forward(&x, true);
        logits
            .cross_entropy_for_logits(&Tensor::from_slice(&[step % 2, 1 - step % 2]))
            .backward();
        sgd.step();
    }
    let state = RunState {
        epoch: 1,
        samples_seen: 4,
        steps: 2,
        best_val_f1: 0.0,
        run_stamp: "2026-01-01_00.00.00".into(),
        config: {
            let mut c = train::config::RunConfig::default();
            c.run.seed = Some(5);
            c.run.comment = "parity".into();
            c
        },
        loss_scale: None,
        best: None,
        cache_fingerprint: None,
    };
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &vs, &sgd, &state).unwrap();
    let path = dir.path().join(checkpoint::MODEL_FILE);
    let script = format!(
        r#"
import json, sys, torch
from luna_model import load_safetensors
m = load_safetensors(sys.argv[1])
assert not m.training
with torch.no_grad():
    logits, probs = m({INPUT_PY})
print(json.dumps(dict(logits=logits.reshape(-1).tolist(), probs=probs.reshape(-1).tolist(),
                      steps=int(m.tail_batchnorm.num_batches_tracked))))
"#
    );
    let got = run_python(&script, &[path.as_os_str()]);
    assert_eq!(got["steps"], 2);
    let (logits, probs) = tch::no_grad(|| model.forward(&input(), false));
    let d_logits = max_abs_diff(&logits, &floats(&got["logits"]));
    let d_probs = max_abs_diff(&probs, &floats(&got["probs"]));
    assert!(d_logits < TOLERANCE, "logits differ by {d_logits}");
    assert!(d_probs < TOLERANCE, "probabilities differ by {d_probs}");
}
