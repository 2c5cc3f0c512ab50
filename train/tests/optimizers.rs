//! Our optimizers and schedules against `torch.optim` itself, on the same
//! parameters, gradients and learning rates, and their checkpoints.

use serde_json::{json, Value};
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};
use train::config::{LrSchedule, OptimizerConfig, OptimizerKind, RunConfig};
use train::model::{BiasInit, LunaModel};
use train::optim::schedule::RunLength;
use train::optim::{Optimize, Optimizer, Schedule};
use train::run::checkpoint::{self, RunState};
use train::run::Trainer;

const INIT_A: [f32; 3] = [0.5, -1.0, 2.0];
const INIT_B: [f32; 4] = [1.5, -0.25, 0.75, -2.0];
const STEPS: usize = 6;

/// Two parameters, `a` `[3]` and `b` `[2, 2]`, with fixed values.
fn params() -> (VarStore, Tensor, Tensor) {
    let vs = VarStore::new(Device::Cpu);
    let a = vs.root().var("a", &[3], nn::Init::Const(0.0));
    let b = vs.root().var("b", &[2, 2], nn::Init::Const(0.0));
    tch::no_grad(|| {
        a.shallow_clone().copy_(&Tensor::from_slice(&INIT_A));
        b.shallow_clone()
            .copy_(&Tensor::from_slice(&INIT_B).view([2, 2]));
    });
    (vs, a, b)
}

/// Step `k`'s gradient of parameter `which`: values of either sign and
/// several magnitudes.
fn gradient(k: usize, which: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (1.3 * k as f32 + 0.7 * (i + 4 * which) as f32).sin() * 2.0)
        .collect()
}

/// `loss = Σ a·g_a + Σ b·g_b`, whose gradients are exactly `g_a`, `g_b`.
fn backward(a: &Tensor, b: &Tensor, k: usize) {
    let ga = Tensor::from_slice(&gradient(k, 0, 3));
    let gb = Tensor::from_slice(&gradient(k, 1, 4)).view([2, 2]);
    ((a * ga).sum(Kind::Float) + (b * gb).sum(Kind::Float)).backward();
}

fn flat(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

fn config(name: OptimizerKind) -> OptimizerConfig {
    OptimizerConfig {
        name,
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.02,
        betas: [0.8, 0.99],
        // Large enough that where eps enters shows in the result.
        eps: 0.05,
        alpha: 0.9,
        ..OptimizerConfig::default()
    }
}

/// The learning rates the runs use: a warm-up into a cosine, so that
/// `set_lr` matters at every step.
fn learning_rates(c: &OptimizerConfig) -> Vec<f64> {
    let s = Schedule::new(
        &OptimizerConfig {
            schedule: LrSchedule::Cosine,
            warmup_samples: 2,
            ..*c
        },
        RunLength {
            batch_size: 1,
            samples_per_epoch: STEPS as u64,
            epochs: 1,
        },
    );
    (0..STEPS as u64).map(|k| s.lr_at(k)).collect()
}

/// Runs each spec of the JSON list in argv[1] with torch.optim; prints
/// the final parameters and optimizer state of each.
const TORCH_OPTIMIZER: &str = r#"
import json, sys, torch

def run(spec):
    a = torch.nn.Parameter(torch.tensor(spec["init_a"], dtype=torch.float32))
    b = torch.nn.Parameter(torch.tensor(spec["init_b"], dtype=torch.float32).view(2, 2))
    c = spec["config"]
    kind = c["name"]
    if kind == "sgd":
        opt = torch.optim.SGD([a, b], lr=c["lr"], momentum=c["momentum"],
                              weight_decay=c["weight_decay"], nesterov=c["nesterov"])
    elif kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls([a, b], lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"],
                  weight_decay=c["weight_decay"])
    else:
        opt = torch.optim.RMSprop([a, b], lr=c["lr"], alpha=c["alpha"], eps=c["eps"],
                                  weight_decay=c["weight_decay"], momentum=c["momentum"])
    for k, lr in enumerate(spec["lrs"]):
        for g in opt.param_groups:
            g["lr"] = lr
        a.grad = torch.tensor(spec["grads_a"][k], dtype=torch.float32)
        b.grad = torch.tensor(spec["grads_b"][k], dtype=torch.float32).view(2, 2)
        opt.step()
    state = {name: {k: v.double().flatten().tolist() for k, v in opt.state[p].items()}
             for name, p in (("a", a), ("b", b))}
    return {"a": a.double().flatten().tolist(), "b": b.double().flatten().tolist(),
            "state": state}

print(json.dumps([run(spec) for spec in json.loads(sys.argv[1])]))
"#;

fn assert_close(got: &[f64], expected: &[f64], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= 2e-6 * e.abs().max(1.0),
            "{what}: ours {got:?}, torch {expected:?}"
        );
    }
}

/// torch.optim's parameters and state after [`STEPS`] steps of each config.
fn torch_results(configs: &[OptimizerConfig]) -> Vec<Value> {
    let specs: Vec<Value> = configs
        .iter()
        .map(|c| {
            json!({
                "init_a": INIT_A, "init_b": INIT_B, "lrs": learning_rates(c),
                "config": serde_json::to_value(c).unwrap(),
                "grads_a": (0..STEPS).map(|k| gradient(k, 0, 3)).collect::<Vec<_>>(),
                "grads_b": (0..STEPS).map(|k| gradient(k, 1, 4)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let out =
        luna_e2e::python::run_python(TORCH_OPTIMIZER, &[Value::from(specs).to_string().as_ref()]);
    serde_json::from_value(out).unwrap()
}

/// Runs `c` over [`STEPS`] steps (through `step_unless(false)` when
/// `masked`) and compares parameters and state with `torch`'s.
fn cross_check(c: &OptimizerConfig, masked: bool, torch: &Value) {
    let (vs, a, b) = params();
    let mut opt = Optimizer::from_config(&vs, c);
    let no_skip = Tensor::from_slice(&[false]);
    for (k, lr) in learning_rates(c).into_iter().enumerate() {
        opt.zero_grad();
        backward(&a, &b, k);
        opt.set_lr(lr);
        if masked {
            opt.step_unless(&no_skip);
        } else {
            opt.step();
        }
    }
    let what = format!("{c:?} masked={masked}");
    let floats = |v: &Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
    assert_close(&flat(&a), &floats(&torch["a"]), &format!("{what}: a"));
    assert_close(&flat(&b), &floats(&torch["b"]), &format!("{what}: b"));
    let state = opt.state();
    assert!(!state.is_empty());
    for (name, tensor) in &state {
        let (slot, param) = name.split_once('.').unwrap();
        // SGD keeps its older checkpoint name for torch's momentum_buffer.
        let torch_slot = if slot == "momentum" {
            "momentum_buffer"
        } else {
            slot
        };
        let expected = &torch["state"][param][torch_slot];
        assert!(
            !expected.is_null(),
            "{what}: torch has no {torch_slot} for {param}"
        );
        assert_close(&flat(tensor), &floats(expected), &format!("{what}: {name}"));
    }
}

#[test]
fn every_optimizer_matches_torch_optim_with_weight_decay_and_a_changing_lr() {
    let cases = [
        config(OptimizerKind::Sgd),
        OptimizerConfig {
            nesterov: true,
            ..config(OptimizerKind::Sgd)
        },
        config(OptimizerKind::Adam),
        OptimizerConfig {
            weight_decay: 0.5,
            ..config(OptimizerKind::AdamW)
        },
        config(OptimizerKind::RmsProp),
        OptimizerConfig {
            momentum: 0.0,
            ..config(OptimizerKind::RmsProp)
        },
    ];
    let torch = torch_results(&cases);
    for (c, torch) in cases.iter().zip(&torch) {
        cross_check(c, false, torch);
        cross_check(c, true, torch);
    }
}

const TORCH_SCHEDULES: &str = r#"
import json, sys, warnings, torch
from torch.optim import lr_scheduler as S
warnings.simplefilter("ignore")
spec = json.loads(sys.argv[1])
lr, E, T, W = spec["lr"], spec["steps_per_epoch"], spec["total_steps"], spec["warmup_steps"]
def run(make):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(T):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out
print(json.dumps({
    "step": run(lambda o: S.StepLR(o, step_size=E * spec["step_epochs"], gamma=spec["gamma"])),
    "cosine": run(lambda o: S.CosineAnnealingLR(o, T_max=T, eta_min=0.0)),
    "onecycle": run(lambda o: S.OneCycleLR(o, max_lr=lr, total_steps=T, cycle_momentum=False)),
    "warmup": run(lambda o: S.LinearLR(o, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W)),
    "warmup_step": run(lambda o: S.ChainedScheduler([
        S.LinearLR(o, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W),
        S.StepLR(o, step_size=E * spec["step_epochs"], gamma=spec["gamma"])])),
}))
"#;

#[test]
fn schedules_match_torch_lr_schedulers() {
    let run = RunLength {
        batch_size: 8,
        samples_per_epoch: 100, // 13 steps, the last one partial
        epochs: 7,
    };
    let base = OptimizerConfig {
        lr: 0.3,
        step_epochs: 2,
        gamma: 0.5,
        warmup_samples: 60, // 8 steps
        ..OptimizerConfig::default()
    };
    let spec = json!({
        "lr": base.lr, "steps_per_epoch": run.steps_per_epoch(), "total_steps": run.total_steps(),
        "warmup_steps": 8, "step_epochs": base.step_epochs, "gamma": base.gamma,
    });
    let torch = luna_e2e::python::run_python(TORCH_SCHEDULES, &[spec.to_string().as_ref()]);
    let cases = [
        ("step", LrSchedule::Step, 0),
        ("cosine", LrSchedule::Cosine, 0),
        ("onecycle", LrSchedule::OneCycle, 0),
        ("warmup", LrSchedule::Constant, base.warmup_samples),
        ("warmup_step", LrSchedule::Step, base.warmup_samples),
    ];
    for (key, schedule, warmup_samples) in cases {
        let s = Schedule::new(
            &OptimizerConfig {
                schedule,
                warmup_samples,
                ..base
            },
            run,
        );
        let expected: Vec<f64> = serde_json::from_value(torch[key].clone()).unwrap();
        assert_eq!(expected.len() as u64, run.total_steps());
        for (k, e) in expected.iter().enumerate() {
            let got = s.lr_at(k as u64);
            assert!(
                (got - e).abs() <= 1e-12 * e.abs().max(1e-6),
                "{key} step {k}: ours {got}, torch {e}"
            );
        }
    }
}

fn run_state(config: RunConfig) -> RunState {
    RunState {
        epoch: 1,
        samples_seen: 12,
        steps: 3,
        best_val_f1: 0.0,
        run_stamp: "2026-01-01_00.00.00".into(),
        config,
        loss_scale: None,
        best: None,
        cache_fingerprint: None,
    }
}

#[test]
fn every_optimizer_state_survives_a_checkpoint_and_continues_bit_for_bit() {
    let kinds = [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
        OptimizerKind::RmsProp,
    ];
    for kind in kinds {
        let c = config(kind);
        let (vs, a, b) = params();
        let mut opt = Optimizer::from_config(&vs, &c);
        for k in 0..3 {
            opt.zero_grad();
            backward(&a, &b, k);
            opt.step();
        }
        let dir = tempfile::tempdir().unwrap();
        let run_config = RunConfig {
            optimizer: c,
            ..RunConfig::default()
        };
        checkpoint::save(dir.path(), &vs, &opt, &run_state(run_config)).unwrap();

        let (mut vs2, a2, b2) = params();
        let mut restored = Optimizer::from_config(&vs2, &c);
        let state = checkpoint::load(dir.path(), &mut vs2, &mut restored).unwrap();
        assert_eq!(state.config.optimizer, c);
        let names =
            |o: &Optimizer| -> Vec<String> { o.state().into_iter().map(|(n, _)| n).collect() };
        assert_eq!(names(&opt), names(&restored), "{kind:?}");
        for k in 3..STEPS {
            for (o, a, b) in [(&mut opt, &a, &b), (&mut restored, &a2, &b2)] {
                o.zero_grad();
                backward(a, b, k);
                o.step();
            }
        }
        assert!(a.equal(&a2) && b.equal(&b2), "{kind:?}: weights diverged");
        for ((n, x), (_, y)) in opt.state().iter().zip(restored.state()) {
            assert!(x.equal(&y), "{kind:?}: {n} diverged");
        }
    }
}

#[test]
fn a_checkpoint_of_another_optimizer_is_refused_with_a_reason() {
    let (vs, a, b) = params();
    let mut adam = Optimizer::from_config(&vs, &config(OptimizerKind::Adam));
    adam.zero_grad();
    backward(&a, &b, 0);
    adam.step();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &vs, &adam, &run_state(RunConfig::default())).unwrap();
    for kind in [OptimizerKind::Sgd, OptimizerKind::RmsProp] {
        let (mut vs2, _, _) = params();
        let mut other = Optimizer::from_config(&vs2, &config(kind));
        let err = checkpoint::load(dir.path(), &mut vs2, &mut other).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("trainer.safetensors") && text.contains("another optimizer"),
            "{kind:?}: {text}"
        );
    }
}

#[test]
fn a_trainer_refuses_a_checkpoint_of_adam_as_adamw() {
    // Both keep the same tensors: only the recorded settings tell them apart.
    let mut config = RunConfig::default();
    config.run.seed = Some(3);
    config.optimizer = self::config(OptimizerKind::Adam);
    let vs = VarStore::new(Device::Cpu);
    let _model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    let mut adam = Optimizer::from_config(&vs, &config.optimizer);
    let total: Tensor = vs
        .trainable_variables()
        .iter()
        .map(|p| p.sum(Kind::Float))
        .sum();
    total.backward();
    adam.step();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &vs, &adam, &run_state(config.clone())).unwrap();

    let mut same = Trainer::new(&config, Device::Cpu, 12).unwrap();
    assert_eq!(
        same.restore(dir.path()).unwrap().config.optimizer,
        config.optimizer
    );
    config.optimizer.name = OptimizerKind::AdamW;
    let err = Trainer::new(&config, Device::Cpu, 12)
        .unwrap()
        .restore(dir.path())
        .unwrap_err();
    assert!(err.to_string().contains("AdamW"), "{err}");
}
