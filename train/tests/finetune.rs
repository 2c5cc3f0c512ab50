//! Fine-tuning (chapter 14): a frozen block does not move under any
//! optimizer step (weight decay and momentum included) and keeps its
//! BatchNorm statistics; the weights come from a LunaModel checkpoint, all
//! but the head's; anything else given as the model is one line naming it;
//! and the checkpoint records what the model classifies.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::config::{Label, OptimizerConfig, OptimizerKind, RunConfig};
use train::model::luna::block_of;
use train::model::{BiasInit, LunaModel, ModelConfig, UNet, UNetConfig};
use train::optim::{Optimize, Optimizer};
use train::run::checkpoint::{self, Architecture, RunState};
use train::run::finetune::{FinetuneError, Pretrained};

fn snapshot(vs: &VarStore) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

/// The blocks (`block_of` names) whose tensors differ between `a` and `b`.
fn moved(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> Vec<String> {
    let mut blocks: Vec<String> = a
        .iter()
        .filter(|(n, t)| !t.equal(&b[*n]))
        .map(|(n, _)| block_of(n).to_owned())
        .collect();
    blocks.sort();
    blocks.dedup();
    blocks
}

/// Three SGD steps (momentum, weight decay) in training mode on random crops.
fn train_steps(model: &LunaModel, vs: &VarStore) {
    let config = OptimizerConfig {
        name: OptimizerKind::Sgd,
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.1,
        ..OptimizerConfig::default()
    };
    let mut sgd = Optimizer::from_config(vs, &config);
    for _ in 0..3 {
        let x = Tensor::randn([4, 1, 32, 48, 48], (Kind::Float, Device::Cpu)) * 400.0;
        let labels = Tensor::from_slice(&[0i64, 1, 0, 1]);
        sgd.zero_grad();
        let out = train::model::forward_batch(model, &x, &labels, true);
        out.loss.mean(Kind::Float).backward();
        sgd.step();
    }
}

#[test]
fn frozen_blocks_stay_bit_identical_under_sgd_with_momentum_and_weight_decay() {
    for (depth, trains) in [(1, vec!["head_linear"]), (2, vec!["block4", "head_linear"])] {
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let mut model = LunaModel::new(&vs.root(), BiasInit::Uniform);
        model.freeze_all_but_last(depth).unwrap();
        let before = snapshot(&vs);
        train_steps(&model, &vs);
        // tail_batchnorm's running statistics included: a frozen block runs
        // in eval mode.
        assert_eq!(moved(&before, &snapshot(&vs)), trains, "depth {depth}");
        let trainable: Vec<String> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, _)| block_of(&n).to_owned())
            .collect();
        assert!(trainable.iter().all(|b| trains.contains(&b.as_str())));
    }
    // Unfrozen, the same steps move every block and the tail's statistics.
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    let before = snapshot(&vs);
    train_steps(&model, &vs);
    assert_eq!(moved(&before, &snapshot(&vs)).len(), 6);
}

fn run_state(config: RunConfig) -> RunState {
    RunState {
        epoch: 1,
        samples_seen: 8,
        steps: 1,
        best_val_f1: 0.0,
        run_stamp: "2026-01-01_00.00.00".into(),
        config,
        loss_scale: None,
        best: None,
        cache_fingerprint: None,
    }
}

/// A saved LunaModel run folder (of `label`) and its weights.
fn saved_luna(dir: &std::path::Path, label: Label) -> HashMap<String, Tensor> {
    tch::manual_seed(9);
    let vs = VarStore::new(Device::Cpu);
    let _model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    let mut config = RunConfig::default();
    config.data.label = label;
    if label == Label::Malignancy {
        config.data.malignancy_csv = Some("mal.csv".into());
    }
    let sgd = Optimizer::from_config(&vs, &config.optimizer);
    checkpoint::save(dir, &vs, &sgd, &run_state(config)).unwrap();
    snapshot(&vs)
}

#[test]
fn a_checkpoints_weights_load_into_all_but_the_fresh_head() {
    let dir = tempfile::tempdir().unwrap();
    let source = saved_luna(dir.path(), Label::Nodule);
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let _model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    let fresh = snapshot(&vs);
    // The run folder, or its model.safetensors.
    for given in [
        dir.path().to_owned(),
        dir.path().join(checkpoint::MODEL_FILE),
    ] {
        let pretrained = Pretrained::read(&given, &ModelConfig::default()).unwrap();
        assert_eq!(pretrained.load_into(&vs).unwrap(), 20);
        for (name, t) in snapshot(&vs) {
            let expected = if block_of(&name) == "head_linear" {
                &fresh[&name]
            } else {
                &source[&name]
            };
            assert!(t.equal(expected), "{name}");
        }
    }
    // Dropout has no weights; another width does.
    let dropout = ModelConfig {
        dropout: 0.3,
        ..ModelConfig::default()
    };
    assert!(Pretrained::read(dir.path(), &dropout).is_ok());
    let wide = ModelConfig {
        width: 2,
        ..ModelConfig::default()
    };
    let err = Pretrained::read(dir.path(), &wide)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("--width") && err.contains("model.safetensors"),
        "{err}"
    );
}

#[test]
fn a_unet_or_a_missing_model_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _unet = UNet::new(&vs.root(), &UNetConfig::default());
    let arch = Architecture::unet(&UNetConfig::default()).unwrap();
    checkpoint::write_model(dir.path(), &vs, 0, &arch, None, None).unwrap();
    let err = Pretrained::read(dir.path(), &ModelConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, FinetuneError::NotLuna { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("--finetune ") && text.contains("U-Net") && !text.contains('\n'),
        "{text}"
    );
    let missing = dir.path().join("nothing-here");
    let err = Pretrained::read(&missing, &ModelConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nothing-here: no such file"), "{err}");
    // Random bytes are no torch.save file either.
    let junk = dir.path().join("junk.state");
    std::fs::write(&junk, b"not a pickle at all").unwrap();
    let err = Pretrained::read(&junk, &ModelConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("--finetune ") && err.contains("junk.state"),
        "{err}"
    );
}

#[test]
fn the_weights_file_says_what_the_model_classifies() {
    for label in [Label::Nodule, Label::Malignancy] {
        let dir = tempfile::tempdir().unwrap();
        saved_luna(dir.path(), label);
        assert_eq!(checkpoint::read_label(dir.path()).unwrap(), Some(label));
    }
    // A U-Net (or an import) does not say.
    let dir = tempfile::tempdir().unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _unet = UNet::new(&vs.root(), &UNetConfig::default());
    let arch = Architecture::unet(&UNetConfig::default()).unwrap();
    checkpoint::write_model(dir.path(), &vs, 0, &arch, None, None).unwrap();
    assert_eq!(checkpoint::read_label(dir.path()).unwrap(), None);
}
