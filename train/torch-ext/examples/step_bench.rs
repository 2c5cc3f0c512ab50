//! Training-step and inference throughput of the book's LunaModel on CPU in
//! fp32 / bf16 autocast / channels-last-3d / both.
//!
//! `cargo run --release --example step_bench -- [train_steps] [infer_steps] [threads]`
//! Set `STEP_BENCH_LAYOUT=1` to print each block's output layout and dtype,
//! `STEP_BENCH_VARIANTS=cl,cl+bf16` to run only some variants.

use std::time::Instant;

use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use torch_ext::memory_format::suggest_memory_format;
use torch_ext::{contiguous_channels_last_3d, var_store_to_channels_last_3d, AutocastGuard};

const TRAIN_BATCH: i64 = 32;
const INFER_BATCH: i64 = 64;

struct Block {
    conv1: nn::Conv3D,
    conv2: nn::Conv3D,
}

impl Block {
    fn new(p: nn::Path, cin: i64, cout: i64) -> Self {
        let cfg = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Block {
            conv1: nn::conv3d(&p / "conv1", cin, cout, 3, cfg),
            conv2: nn::conv3d(&p / "conv2", cout, cout, 3, cfg),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        // In-place ReLU as the book's model (nn.ReLU(inplace=True)): conv
        // backward needs only its input, so overwriting its output is safe
        // and saves a full activation write + read per layer.
        let mut h = x.apply(&self.conv1);
        let _ = h.relu_();
        let mut h = h.apply(&self.conv2);
        let _ = h.relu_();
        h.max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false)
    }
}

struct LunaModel {
    tail: nn::BatchNorm,
    blocks: Vec<Block>,
    head: nn::Linear,
}

impl LunaModel {
    fn new(p: nn::Path) -> Self {
        let chans = [1, 8, 16, 32, 64];
        LunaModel {
            tail: nn::batch_norm3d(&p / "tail_batchnorm", 1, Default::default()),
            blocks: (0..4)
                .map(|i| Block::new(&p / format!("block{}", i + 1), chans[i], chans[i + 1]))
                .collect(),
            head: nn::linear(&p / "head_linear", 1152, 2, Default::default()),
        }
    }

    fn forward(&self, x: &Tensor, train: bool, report: bool) -> Tensor {
        let mut x = self.tail.forward_t(x, train);
        if report {
            show("tail_batchnorm", &x);
        }
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.forward(&x);
            if report {
                show(&format!("block{}", i + 1), &x);
            }
        }
        x.flatten(1, -1).apply(&self.head)
    }
}

fn show(name: &str, t: &Tensor) {
    println!(
        "    {name:<15} {:?} {:?} {:?}",
        t.size(),
        t.kind(),
        suggest_memory_format(t).unwrap()
    );
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    channels_last: bool,
    bf16: bool,
}

fn prepare(x: &Tensor, v: Variant) -> Tensor {
    if v.channels_last {
        contiguous_channels_last_3d(x).unwrap()
    } else {
        x.shallow_clone()
    }
}

fn train(v: Variant, steps: usize, report: bool) -> f64 {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = LunaModel::new(vs.root());
    if v.channels_last {
        var_store_to_channels_last_3d(&vs).unwrap();
    }
    let mut opt = nn::sgd(0.99, 0.0, 0.0, false).build(&vs, 1e-3).unwrap();
    let x = prepare(
        &Tensor::randn([TRAIN_BATCH, 1, 32, 48, 48], (Kind::Float, Device::Cpu)),
        v,
    );
    let y = Tensor::randint(2, [TRAIN_BATCH], (Kind::Int64, Device::Cpu));
    let mut one = |report: bool| {
        opt.zero_grad();
        let loss = {
            // Autocast only around forward + loss; backward replays the
            // recorded dtypes on its own.
            let _amp = v
                .bf16
                .then(|| AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap());
            model.forward(&x, true, report).cross_entropy_for_logits(&y)
        };
        loss.backward();
        opt.step();
    };
    one(report);
    one(false);
    let t = Instant::now();
    for _ in 0..steps {
        one(false);
    }
    (steps as i64 * TRAIN_BATCH) as f64 / t.elapsed().as_secs_f64()
}

fn infer(v: Variant, steps: usize) -> f64 {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = LunaModel::new(vs.root());
    if v.channels_last {
        var_store_to_channels_last_3d(&vs).unwrap();
    }
    let x = prepare(
        &Tensor::randn([INFER_BATCH, 1, 32, 48, 48], (Kind::Float, Device::Cpu)),
        v,
    );
    let _no_grad = tch::no_grad_guard();
    let one = || {
        let _amp = v
            .bf16
            .then(|| AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap());
        let out = model.forward(&x, false, false).softmax(-1, Kind::Float);
        let _ = out.double_value(&[0, 0]);
    };
    one();
    one();
    let t = Instant::now();
    for _ in 0..steps {
        one();
    }
    (steps as i64 * INFER_BATCH) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let train_steps = args.first().copied().unwrap_or(5);
    let infer_steps = args.get(1).copied().unwrap_or(5);
    let threads = args.get(2).copied().unwrap_or(2);
    tch::set_num_threads(threads as i32);
    let report = std::env::var_os("STEP_BENCH_LAYOUT").is_some();
    println!(
        "tch LunaModel, {threads} threads, native bf16: {}",
        torch_ext::cpu_has_native_bf16()
    );
    let variants = [
        Variant {
            name: "fp32",
            channels_last: false,
            bf16: false,
        },
        Variant {
            name: "bf16",
            channels_last: false,
            bf16: true,
        },
        Variant {
            name: "cl",
            channels_last: true,
            bf16: false,
        },
        Variant {
            name: "cl+bf16",
            channels_last: true,
            bf16: true,
        },
    ];
    println!(
        "{:<8} {:>14} {:>14}",
        "variant", "train samp/s", "infer samp/s"
    );
    let only = std::env::var("STEP_BENCH_VARIANTS").ok();
    for v in variants {
        if let Some(only) = &only {
            if !only.split(',').any(|n| n == v.name) {
                continue;
            }
        }
        if report {
            println!("  layouts ({}):", v.name);
        }
        let tr = train(v, train_steps, report);
        let inf = infer(v, infer_steps);
        println!("{:<8} {:>14.1} {:>14.1}", v.name, tr, inf);
    }
}
