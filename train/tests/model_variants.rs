//! Every model variant takes a training step on the CPU: finite loss, weights move.

use tch::nn::VarStore;
use tch::{Device, Kind, Reduction, Tensor};
use train::model::{BiasInit, LunaModel, ModelConfig, INPUT_SHAPE};
use train::optim::{Optimize, Sgd};

fn one_step(config: ModelConfig, weight_decay: f64) {
    config.validate(INPUT_SHAPE).unwrap();
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let model = LunaModel::with_config(&vs.root(), &config, BiasInit::Uniform);
    let mut sgd = Sgd::new(&vs, 0.01, 0.9).with_weight_decay(weight_decay);
    let before: Vec<(String, Tensor)> = vs
        .trainable_variables()
        .iter()
        .enumerate()
        .map(|(i, t)| (i.to_string(), t.copy()))
        .collect();
    let x = Tensor::randn([4, 1, 32, 48, 48], (Kind::Float, Device::Cpu)) * 300.0;
    let labels = Tensor::from_slice(&[0i64, 1, 0, 1]);
    sgd.zero_grad();
    let (logits, probs) = model.forward(&x, true);
    assert_eq!(probs.size(), vec![4, 2]);
    let loss = logits
        .cross_entropy_loss::<Tensor>(&labels, None, Reduction::None, -100, 0.0)
        .mean(Kind::Float);
    let value = loss.double_value(&[]);
    assert!(value.is_finite(), "{config:?}: loss {value}");
    loss.backward();
    // Every parameter gets a gradient (the head sees every block's output).
    // Asked of the gradients, not of the weights after the step: an update
    // below a weight's float resolution (a BatchNorm scale of 1.0 moved by
    // 1e-9) leaves it equal, and whether that happens depends on the draws,
    // which other tests share through libtorch's process-wide generator.
    let params = vs.trainable_variables();
    let with_gradient = params
        .iter()
        .filter(|p| {
            let g = p.grad();
            g.defined() && g.abs().sum(Kind::Double).double_value(&[]) > 0.0
        })
        .count();
    assert_eq!(
        with_gradient,
        params.len(),
        "{config:?}: {with_gradient} of {} have a gradient",
        params.len()
    );
    sgd.step();
    let after = vs.trainable_variables();
    let moved = before
        .iter()
        .zip(&after)
        .filter(|((_, b), a)| !b.equal(a))
        .count();
    assert!(moved > 0, "{config:?}: the step moved no weight");
    // Eval mode runs on the same weights.
    let (_, probs) = tch::no_grad(|| model.forward(&x, false));
    assert!(probs.isfinite().all().int64_value(&[]) == 1);
}

#[test]
fn each_variant_trains_one_step() {
    let book = ModelConfig::default();
    one_step(book, 0.0);
    one_step(ModelConfig { width: 2, ..book }, 0.0);
    one_step(ModelConfig { depth: 5, ..book }, 0.0);
    one_step(ModelConfig { depth: 2, ..book }, 0.0);
    one_step(
        ModelConfig {
            dropout: 0.5,
            ..book
        },
        0.0,
    );
    one_step(
        ModelConfig {
            block_batchnorm: true,
            ..book
        },
        0.0,
    );
    one_step(
        ModelConfig {
            residual: true,
            ..book
        },
        0.0,
    );
    one_step(book, 1e-3);
    one_step(
        ModelConfig {
            width: 2,
            depth: 3,
            dropout: 0.2,
            block_batchnorm: true,
            residual: true,
            ..book
        },
        1e-4,
    );
}
