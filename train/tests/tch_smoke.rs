//! libtorch is linked, loads, and computes gradients on the CPU.

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn small_conv_net_forward_backward_gives_finite_nonzero_gradients() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq()
        .add(nn::conv3d(
            &root / "conv",
            1,
            4,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        ))
        .add_fn(|x| x.relu().adaptive_avg_pool3d([1, 1, 1]).flatten(1, -1))
        .add(nn::linear(&root / "head", 4, 2, Default::default()));
    let x = Tensor::randn([3, 1, 4, 6, 6], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 1]);
    let logits = net.forward(&x);
    assert_eq!(logits.size(), vec![3, 2]);
    let loss = logits.cross_entropy_for_logits(&labels);
    let mut opt = nn::Sgd::default().build(&vs, 0.01).unwrap();
    opt.zero_grad();
    loss.backward();
    let mut nonzero = 0;
    for (name, var) in vs.variables() {
        let grad = var.grad();
        assert!(grad.defined(), "{name} has no gradient");
        let finite = grad.isfinite().all().int64_value(&[]);
        assert_eq!(finite, 1, "{name} has non-finite gradient values");
        if grad.abs().sum(Kind::Float).double_value(&[]) > 0.0 {
            nonzero += 1;
        }
    }
    assert_eq!(
        nonzero,
        vs.variables().len(),
        "every parameter should receive a gradient"
    );
    let before = loss.double_value(&[]);
    opt.step();
    let after = net
        .forward(&x)
        .cross_entropy_for_logits(&labels)
        .double_value(&[]);
    assert!(
        after < before,
        "one SGD step should lower the loss on the same batch ({before} -> {after})"
    );
}

#[test]
fn doctor_reports_cpu_build_facts() {
    let r = train::commands::doctor::report();
    assert!(
        r.libtorch.starts_with("2.11.0"),
        "libtorch version {}",
        r.libtorch
    );
    assert!(r.threads >= 1);
    assert_eq!(r.cuda_available, r.device_count > 0);
    // The PyPI wheel is built with oneDNN, whose fused op the CPU's bf16
    // inference takes.
    assert!(
        r.fused_conv,
        "libtorch without mkldnn::_convolution_pointwise"
    );
    // The features listed are the ones the bf16 decision reads.
    let listed = |f| r.cpu_features.contains(&f);
    assert_eq!(
        r.cpu_native_bf16,
        listed("avx512_bf16") || listed("amx_bf16"),
        "{:?}",
        r.cpu_features
    );
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        assert_eq!(
            listed("avx2"),
            std::arch::is_x86_feature_detected!("avx2"),
            "{:?}",
            r.cpu_features
        );
        assert!(r.cpu_model.is_some(), "no model name in /proc/cpuinfo");
    }
}
