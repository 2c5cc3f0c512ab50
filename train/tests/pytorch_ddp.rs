//! scripts/torch_ddp_train.py under torchrun: two CPU processes (gloo) train
//! a few steps from a cache and rank 0 writes a model.safetensors that the
//! Rust LunaModel loads; launched directly, and through the Slurm batch
//! script examples/slurm/torch_ddp.sh (its c10d rendezvous for real, with
//! `srun` and `scontrol` stood in for by one-line scripts).

use std::path::Path;
use std::process::{Command, Output};

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
        .args(small_run(&cache, &out_dir))
        // CPU ranks even where a GPU is present; one thread each on a shared machine.
        .env("CUDA_VISIBLE_DEVICES", "")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("failed to start torchrun");
    check_two_ranks_trained(&out, &out_dir);
}

#[test]
fn the_slurm_batch_script_launches_the_same_training() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    build_cache(&cache, 2, 20);
    let out_dir = dir.path().join("run");
    // Stand-ins for the two Slurm commands the script calls: srun runs its
    // command once (one node), scontrol expands the node list to itself.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    shim(
        &bin,
        "srun",
        "while [[ $1 == -* ]]; do shift; done; exec \"$@\"",
    );
    shim(&bin, "scontrol", "echo \"$3\"");
    let python = crate::common::python();
    let venv = python.ancestors().nth(2).unwrap();
    let script = scripts_dir().join("../examples/slurm/torch_ddp.sh");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = 20000 + std::process::id() % 20000;
    let out = Command::new("bash")
        .arg(script)
        .args(small_run(&cache, &out_dir))
        .env("PATH", path)
        .env("TORCH_VENV", venv)
        .env("SLURM_JOB_NODELIST", "localhost")
        .env("SLURM_NNODES", "1")
        .env("SLURM_JOB_ID", "4242")
        .env("NPROC_PER_NODE", "2")
        .env("MASTER_PORT", port.to_string())
        .env("SLURM_SUBMIT_DIR", scripts_dir().join(".."))
        .env("CUDA_VISIBLE_DEVICES", "")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("failed to start bash");
    check_two_ranks_trained(&out, &out_dir);
}

fn shim(bin: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// torch_ddp_train.py's arguments for three steps of batch 4 per rank.
fn small_run(cache: &Path, out_dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--cache".into(),
        cache.display().to_string(),
        "--out".into(),
        out_dir.display().to_string(),
    ];
    let rest = [
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--log-every",
        "1",
        "--balanced",
        "--epoch-samples",
        "16",
        "--augmented",
        "--backend",
        "gloo",
    ];
    args.extend(rest.iter().map(|a| a.to_string()));
    args
}

/// Two gloo ranks ran three steps of 8 samples and rank 0 saved a model
/// the Rust LunaModel loads and runs.
fn check_two_ranks_trained(out: &Output, out_dir: &Path) {
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
