//! Checkpoints restore exactly in Rust and load into the book's PyTorch LunaModel.

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::model::{BiasInit, LunaModel};
use train::optim::{LossScaleState, Optimize, Sgd};
use train::run::checkpoint::{self, RunState};

/// A deterministic input both languages can build: HU-like values from an index formula.
fn input() -> Tensor {
    let n = 2 * 32 * 48 * 48;
    let idx = Tensor::arange(n, (Kind::Float, Device::Cpu));
    ((idx * 0.37).sin() * 800.0).view([2, 1, 32, 48, 48])
}

fn trained_model() -> (VarStore, LunaModel, Sgd) {
    tch::manual_seed(42);
    let vs = VarStore::new(Device::Cpu);
    let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    let mut sgd = Sgd::new(&vs, 0.001, 0.99);
    for _ in 0..2 {
        sgd.zero_grad();
        let (logits, _) = model.forward(&input(), true);
        logits
            .cross_entropy_for_logits(&Tensor::from_slice(&[0i64, 1]))
            .backward();
        sgd.step();
    }
    (vs, model, sgd)
}

fn state() -> RunState {
    RunState {
        epoch: 3,
        samples_seen: 96,
        steps: 2,
        best_val_f1: 0.25,
        run_stamp: "2026-01-01_00.00.00".into(),
        config: {
            let mut c = train::config::RunConfig::default();
            c.run.seed = Some(9);
            c.run.comment = "ckpt".into();
            c
        },
        loss_scale: None,
        best: None,
        cache_fingerprint: None,
    }
}

#[test]
fn save_then_load_restores_weights_momentum_and_state() {
    let (vs, model, sgd) = trained_model();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &vs, &sgd, &state()).unwrap();
    assert!(!dir.path().join("model.safetensors.tmp").exists());

    tch::manual_seed(7);
    let mut vs2 = VarStore::new(Device::Cpu);
    let model2 = LunaModel::new(&vs2.root(), BiasInit::Uniform);
    let mut sgd2 = Sgd::new(&vs2, 0.001, 0.99);
    let got = checkpoint::load(dir.path(), &mut vs2, &mut sgd2).unwrap();
    assert_eq!(got, state());
    assert_eq!(checkpoint::read_state(dir.path()).unwrap(), state());

    let (a, b) = (vs.variables(), vs2.variables());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after load");
    }
    let (ma, mb) = (sgd.momentum_buffers(), sgd2.momentum_buffers());
    // 16 conv + 2 linear + 2 batch-norm parameters.
    assert_eq!(ma.len(), 20);
    for ((na, ta), (nb, tb)) in ma.iter().zip(&mb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "momentum {na} differs");
    }
    let x = input();
    assert!(model
        .forward(&x, false)
        .0
        .equal(&model2.forward(&x, false).0));
}

/// Equal weights and state must give equal bytes, so runs can be compared by
/// checksum (the resume test does); map order must not leak into the header.
#[test]
fn an_fp16_runs_loss_scale_is_saved_and_restored_and_absent_otherwise() {
    let (vs, _model, sgd) = trained_model();
    let dir = tempfile::tempdir().unwrap();
    let scaled = RunState {
        loss_scale: Some(LossScaleState {
            scale: 8192.0,
            growth_tracker: 17,
        }),
        ..state()
    };
    checkpoint::save(dir.path(), &vs, &sgd, &scaled).unwrap();
    let (mut vs2, mut sgd2) = (vs, sgd);
    let got = checkpoint::load(dir.path(), &mut vs2, &mut sgd2).unwrap();
    assert_eq!(got.loss_scale, scaled.loss_scale);
    // A run without one writes no key at all: older readers see the same file.
    checkpoint::save(dir.path(), &vs2, &sgd2, &state()).unwrap();
    let bytes = std::fs::read(dir.path().join("trainer.safetensors")).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("loss_scale"));
    let got = checkpoint::load(dir.path(), &mut vs2, &mut sgd2).unwrap();
    assert_eq!(got.loss_scale, None);
}

#[test]
fn equal_checkpoints_are_byte_identical() {
    let (vs, _model, sgd) = trained_model();
    let dir = tempfile::tempdir().unwrap();
    let read =
        |i: usize, file: &str| std::fs::read(dir.path().join(i.to_string()).join(file)).unwrap();
    for i in 0..8 {
        checkpoint::save(&dir.path().join(i.to_string()), &vs, &sgd, &state()).unwrap();
    }
    for file in [checkpoint::MODEL_FILE, checkpoint::TRAINER_FILE] {
        let first = read(0, file);
        for i in 1..8 {
            assert!(
                read(i, file) == first,
                "{file} of save {i} differs from save 0"
            );
        }
    }
}

#[test]
fn loading_a_damaged_or_foreign_file_is_an_error_naming_it() {
    let (vs, _, sgd) = trained_model();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &vs, &sgd, &state()).unwrap();
    let model_path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&model_path).unwrap();
    std::fs::write(&model_path, &bytes[..bytes.len() / 2]).unwrap();
    let mut vs2 = VarStore::new(Device::Cpu);
    let _m = LunaModel::new(&vs2.root(), BiasInit::Uniform);
    let mut sgd2 = Sgd::new(&vs2, 0.001, 0.99);
    let err = checkpoint::load(dir.path(), &mut vs2, &mut sgd2).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    // A checkpoint of a different model is refused, not half-loaded.
    let other = VarStore::new(Device::Cpu);
    let _ = (other.root() / "block1" / "conv1").var("weight", &[3], tch::nn::Init::Const(0.0));
    checkpoint::save(dir.path(), &other, &Sgd::new(&other, 0.1, 0.9), &state()).unwrap();
    let err = checkpoint::load(dir.path(), &mut vs2, &mut sgd2).unwrap_err();
    assert!(
        err.to_string().contains("missing tensor") || err.to_string().contains("shape"),
        "{err}"
    );
}

/// Loads with `scripts/luna_model.py`, the model users import, so the check covers it.
const PYTORCH_LOAD: &str = r#"
import json, sys, torch
from safetensors.torch import load_file

sys.path.insert(0, sys.argv[2])
from luna_model import LunaModel

m = LunaModel()
m.load_state_dict(load_file(sys.argv[1]), strict=True)
m.eval()
x = (torch.arange(2 * 32 * 48 * 48, dtype=torch.float32) * 0.37).sin() * 800.0
with torch.no_grad():
    logits, probs = m(x.view(2, 1, 32, 48, 48))
print(json.dumps({"params": sum(p.numel() for p in m.parameters()),
                  "logits": logits.reshape(-1).tolist(),
                  "steps": int(m.tail_batchnorm.num_batches_tracked)}))
"#;

#[test]
fn pytorch_loads_the_weights_strictly_and_computes_the_same_logits() {
    let (vs, model, sgd) = trained_model();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &vs, &sgd, &state()).unwrap();
    let path = dir.path().join("model.safetensors");
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let got = crate::common::run_python(PYTORCH_LOAD, &[path.as_os_str(), scripts.as_os_str()]);
    assert_eq!(got["params"], 222_220);
    assert_eq!(got["steps"], 2);
    let torch_logits: Vec<f64> = serde_json::from_value(got["logits"].clone()).unwrap();
    let (logits, _) = model.forward(&input(), false);
    let ours = Vec::<f32>::try_from(logits.flatten(0, -1)).unwrap();
    for (a, b) in ours.iter().zip(&torch_logits) {
        assert!(
            ((*a as f64) - b).abs() < 1e-3 * (1.0 + b.abs()),
            "{ours:?} vs {torch_logits:?}"
        );
    }
}
