//! The fused optimizer steps against a plain restatement of torch's update
//! rules, and the skip: with `found_inf` = 1 nothing at all changes. On the
//! CPU, and on a GPU where this binary sees one.

use tch::{Device, Kind, Tensor};
use torch_ext::{fused_adam_, fused_sgd_, AdamStep, AdamTensors, SgdStep};

fn devices() -> Vec<Device> {
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    devices
}

fn tensors(seed: i64, device: Device) -> (Vec<Tensor>, Vec<Tensor>) {
    tch::manual_seed(seed);
    let params = vec![
        Tensor::randn([5, 3], (Kind::Float, device)),
        Tensor::randn([7], (Kind::Float, device)),
    ];
    let grads = params.iter().map(Tensor::randn_like).collect();
    (params, grads)
}

fn copies(list: &[Tensor]) -> Vec<Tensor> {
    list.iter().map(Tensor::copy).collect()
}

fn max_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

const ADAM: AdamStep = AdamStep {
    lr: 1e-2,
    beta1: 0.9,
    beta2: 0.999,
    weight_decay: 0.01,
    eps: 1e-8,
    decoupled_weight_decay: false,
};

#[test]
fn fused_adam_takes_torch_steps_and_a_skipped_one_changes_nothing() {
    for (device, decoupled) in devices().into_iter().flat_map(|d| [(d, false), (d, true)]) {
        let h = AdamStep {
            decoupled_weight_decay: decoupled,
            ..ADAM
        };
        let (params, grads) = tensors(3, device);
        let expected = copies(&params);
        let zeros = || params.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        let (m, v) = (zeros(), zeros());
        let (em, ev) = (zeros(), zeros());
        let scalar = |v: f64| Tensor::full([], v, (Kind::Float, device));
        let steps: Vec<_> = params.iter().map(|_| scalar(0.0)).collect();
        let t = AdamTensors {
            params: &params,
            grads: &grads,
            exp_avgs: &m,
            exp_avg_sqs: &v,
            steps: &steps,
        };
        let skip = scalar(1.0);
        let before = copies(&params);
        fused_adam_(&t, &h, Some(&skip)).unwrap();
        assert_eq!(
            max_diff(&params, &before),
            0.0,
            "a skipped step moved a parameter"
        );
        assert_eq!(steps[0].double_value(&[]), 0.0, "a skipped step counted");
        assert_eq!(m[0].abs().sum(Kind::Double).double_value(&[]), 0.0);
        let go = scalar(0.0);
        for step in 1..=3 {
            fused_adam_(&t, &h, if step == 2 { Some(&go) } else { None }).unwrap();
            for (i, p) in expected.iter().enumerate() {
                adam_reference(p, &grads[i], &em[i], &ev[i], step as f64, &h);
            }
            let what = format!("step {step}, decoupled {decoupled}, {device:?}");
            assert!(max_diff(&params, &expected) < 1e-6, "{what}");
            assert_eq!(steps[1].double_value(&[]), step as f64);
        }
    }
}

/// torch's single-tensor Adam, written out.
fn adam_reference(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, t: f64, h: &AdamStep) {
    let mut p = p.shallow_clone();
    let g = if h.decoupled_weight_decay {
        let _ = p.g_mul_scalar_(1.0 - h.lr * h.weight_decay);
        g.shallow_clone()
    } else {
        g + &p * h.weight_decay
    };
    let _ = m.shallow_clone().lerp_(&g, 1.0 - h.beta1);
    let _ = v
        .shallow_clone()
        .g_mul_scalar_(h.beta2)
        .addcmul_(&(&g * (1.0 - h.beta2)), &g);
    let step_size = h.lr / (1.0 - h.beta1.powf(t));
    let denom = v.sqrt() / (1.0 - h.beta2.powf(t)).sqrt() + h.eps;
    let _ = p.addcdiv_(&(m * -step_size), &denom);
}

#[test]
fn fused_sgd_takes_torch_steps_and_a_skipped_one_changes_nothing() {
    for (device, nesterov) in devices().into_iter().flat_map(|d| [(d, false), (d, true)]) {
        let (params, grads) = tensors(5, device);
        let expected = copies(&params);
        let buffers: Vec<_> = params.iter().map(Tensor::zeros_like).collect();
        let skip = Tensor::ones([], (Kind::Float, device));
        let mut h = SgdStep {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.001,
            nesterov,
            first_step: true,
        };
        fused_sgd_(&params, &grads, &buffers, &h, Some(&skip)).unwrap();
        assert_eq!(
            max_diff(&params, &expected),
            0.0,
            "a skipped step moved a parameter"
        );
        assert_eq!(buffers[0].abs().sum(Kind::Double).double_value(&[]), 0.0);
        let mut reference: Vec<Option<Tensor>> = vec![None, None];
        for step in 0..3 {
            fused_sgd_(&params, &grads, &buffers, &h, None).unwrap();
            h.first_step = false;
            for (i, p) in expected.iter().enumerate() {
                let g = &grads[i] + &(p * h.weight_decay);
                let buf = match reference[i].take() {
                    None => g.copy(),
                    Some(b) => b * h.momentum + &g,
                };
                let update = if nesterov {
                    &g + &(&buf * h.momentum)
                } else {
                    buf.shallow_clone()
                };
                let _ = p.shallow_clone().g_add_(&(update * -h.lr));
                reference[i] = Some(buf);
            }
            let what = format!("step {step}, nesterov {nesterov}, {device:?}");
            assert!(max_diff(&params, &expected) < 1e-6, "{what}");
        }
    }
}

#[test]
fn unequal_lists_are_refused_before_the_op() {
    let (params, grads) = tensors(1, Device::Cpu);
    let h = SgdStep {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
        first_step: true,
    };
    let err = fused_sgd_(&params, &grads[..1], &grads, &h, None).unwrap_err();
    assert!(err.to_string().contains("differ in length"), "{err}");
}
