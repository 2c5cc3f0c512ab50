//! scripts/torch_ddp_train.py under torchrun: two CPU processes (gloo) train
//! a few steps from a cache and rank 0 writes a model.safetensors that the
//! Rust LunaModel loads.

use std::process::Command;

use crate::pytorch_support::{build_cache, input, scripts_dir};
use tch::nn::VarStore;
use tch::Device;
use train::model::{BiasInit, LunaModel};

#[test]
fn two_gloo_ranks_train_and_save_a_model_rust_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    build_cache(&cache, 2, 20);
    let out_dir = dir.path().join("run");
    let out = Command::new(crate::common::python())
        .args([
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
        ])
        .arg(scripts_dir().join("torch_ddp_train.py"))
        .arg("--cache")
        .arg(&cache)
        .arg("--out")
        .arg(&out_dir)
        .args(["--steps", "3", "--batch-size", "4", "--log-every", "1"])
        .args(["--balanced", "--epoch-samples", "16", "--augmented"])
        .args(["--backend", "gloo"])
        // CPU ranks even where a GPU is present; one thread each on a shared machine.
        .env("CUDA_VISIBLE_DEVICES", "")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("failed to start torchrun");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "torchrun failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let start = events
        .iter()
        .find(|e| e["event"] == "start")
        .expect(&stdout);
    assert_eq!(start["world_size"], 2);
    assert_eq!(start["backend"], "gloo");
    let steps: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "step").collect();
    assert_eq!(steps.len(), 3, "{stdout}");
    for s in &steps {
        // Two ranks × batch 4 per step.
        assert_eq!(s["samples"], 8);
        assert!(s["loss"].as_f64().unwrap().is_finite());
    }
    // 16 balanced samples: 8 per rank, two batches of 4; step 3 starts epoch 2.
    assert_eq!(steps[2]["epoch"], 2);

    let model_path = out_dir.join("model.safetensors");
    assert!(events.iter().any(|e| e["event"] == "saved"));
    let mut vs = VarStore::new(Device::Cpu);
    let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    vs.load(&model_path).unwrap();
    let (_, probs) = tch::no_grad(|| model.forward(&input(), false));
    let probs = Vec::<f32>::try_from(probs.flatten(0, -1)).unwrap();
    assert!(probs
        .iter()
        .all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
}
