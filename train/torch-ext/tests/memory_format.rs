//! Channels-last-3d conversion of tensors and VarStores.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use torch_ext::memory_format::{contiguous_with, is_contiguous_with, suggest_memory_format};
use torch_ext::{
    contiguous_channels_last_3d, is_channels_last_3d, var_store_to_channels_last_3d, Error,
    MemoryFormat,
};

#[test]
fn tensor_becomes_channels_last_with_same_values() {
    let x = Tensor::randn([2, 3, 4, 5, 6], (Kind::Float, Device::Cpu));
    assert!(!is_channels_last_3d(&x));
    let y = contiguous_channels_last_3d(&x).unwrap();
    assert!(is_channels_last_3d(&y));
    assert!(!y.is_contiguous());
    assert_eq!(y.size(), x.size());
    // NDHWC strides: C innermost.
    assert_eq!(y.stride(), vec![3 * 4 * 5 * 6, 1, 5 * 6 * 3, 6 * 3, 3]);
    assert!(y.equal(&x));
    assert_eq!(
        suggest_memory_format(&y).unwrap(),
        MemoryFormat::ChannelsLast3d
    );
    // Already channels-last: no copy.
    let z = contiguous_channels_last_3d(&y).unwrap();
    assert_eq!(z.data_ptr(), y.data_ptr());
    // And back.
    let back = contiguous_with(&y, MemoryFormat::Contiguous).unwrap();
    assert!(back.is_contiguous());
    assert!(back.equal(&x));
}

#[test]
fn non_5d_is_an_error() {
    let x = Tensor::zeros([2, 3, 4], (Kind::Float, Device::Cpu));
    let err = contiguous_channels_last_3d(&x).unwrap_err();
    assert!(matches!(err, Error::NotFiveD(3)));
    assert_eq!(
        err.to_string(),
        "channels-last 3d needs a 5-D tensor, got 3-D"
    );
    assert!(!is_channels_last_3d(&x));
    // Straight to libtorch: its exception comes back as an Err, not an abort.
    let err = contiguous_with(&x, MemoryFormat::ChannelsLast3d).unwrap_err();
    assert!(matches!(err, Error::Torch(_)), "{err}");
    assert!(err.to_string().contains("rank 5"), "{err}");
    assert!(!err.to_string().contains("frame #"), "{err}");
    assert!(!is_contiguous_with(&x, MemoryFormat::ChannelsLast3d).unwrap());
}

#[test]
fn undefined_tensor_is_not_channels_last() {
    let t = Tensor::new();
    assert!(!t.defined());
    assert!(!is_channels_last_3d(&t));
}

fn model(p: nn::Path) -> impl Module {
    let cfg = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    nn::seq()
        .add(nn::conv3d(&p / "c1", 1, 8, 3, cfg))
        .add_fn(|x| x.relu())
        .add(nn::conv3d(&p / "c2", 8, 16, 3, cfg))
        .add_fn(|x| {
            x.relu()
                .max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false)
        })
        .add_fn(|x| x.flatten(1, -1))
        .add(nn::linear(&p / "fc", 16 * 4 * 6 * 6, 2, Default::default()))
}

#[test]
fn var_store_conversion_keeps_variables_and_results() {
    tch::manual_seed(7);
    let vs_ref = nn::VarStore::new(Device::Cpu);
    let m_ref = model(vs_ref.root());
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = model(vs.root());
    vs.copy(&vs_ref).unwrap();

    let x = Tensor::randn([2, 1, 8, 12, 12], (Kind::Float, Device::Cpu));
    let y_ref = m_ref.forward(&x);

    let n_vars = vs.variables().len();
    // A handle taken before the conversion, as the conv module holds one.
    let w2_handle = vs.variables()["c2.weight"].shallow_clone();
    assert!(!is_channels_last_3d(&w2_handle));
    // c1.weight [8, 1, 3, 3, 3] has one input channel: its NCDHW strides
    // pass is_contiguous(channels_last_3d), but libtorch reads the layout
    // from the strides (suggest_memory_format), so it must be restrided too.
    let w1_handle = vs.variables()["c1.weight"].shallow_clone();
    assert!(is_channels_last_3d(&w1_handle));
    assert_eq!(
        suggest_memory_format(&w1_handle).unwrap(),
        MemoryFormat::Contiguous
    );
    assert_eq!(var_store_to_channels_last_3d(&vs).unwrap(), 2);
    assert_eq!(w1_handle.stride(), vec![27, 1, 9, 3, 1]);
    assert_eq!(
        suggest_memory_format(&w1_handle).unwrap(),
        MemoryFormat::ChannelsLast3d
    );
    // Idempotent.
    assert_eq!(var_store_to_channels_last_3d(&vs).unwrap(), 0);
    let vars = vs.variables();
    assert_eq!(vars.len(), n_vars);
    assert!(
        is_channels_last_3d(&w2_handle),
        "same TensorImpl, new layout"
    );
    for (name, t) in &vars {
        assert!(t.requires_grad(), "{name}");
        if t.dim() == 5 {
            assert!(is_channels_last_3d(t), "{name}");
        } else {
            assert!(t.is_contiguous(), "{name}");
        }
    }
    // The module's own handles see the new layout (same TensorImpl).
    let y = m.forward(&x);
    assert!(y.allclose(&y_ref, 1e-5, 1e-5, false));
    // Every conv, the first one included, computes in channels-last.
    let b1 = vs.variables()["c1.bias"].shallow_clone();
    let y1 = x.conv3d(&w1_handle, Some(&b1), [1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
    assert_eq!(
        suggest_memory_format(&y1).unwrap(),
        MemoryFormat::ChannelsLast3d
    );
    // Channels-last input through channels-last weights.
    let x_cl = contiguous_channels_last_3d(&x).unwrap();
    let y_cl = m.forward(&x_cl);
    assert!(y_cl.allclose(&y_ref, 1e-5, 1e-5, false));

    // Gradients land in the weights' layout and flow to the same variables.
    y_cl.sum(Kind::Float).backward();
    let w = &vars["c2.weight"];
    let g = w.grad();
    assert!(g.defined());
    assert!(is_channels_last_3d(&g));
    assert_eq!(g.kind(), Kind::Float);
}

#[test]
fn four_d_tensors_and_var_stores_become_channels_last() {
    use torch_ext::{contiguous_channels_last, is_channels_last, var_store_to_channels_last};
    let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
    let y = contiguous_channels_last(&x).unwrap();
    assert!(is_channels_last(&y) && !y.is_contiguous());
    assert_eq!(y.stride(), vec![3 * 4 * 5, 1, 5 * 3, 3]);
    assert!(y.equal(&x));
    assert!(matches!(
        contiguous_channels_last(&Tensor::zeros([2, 3, 4, 5, 6], (Kind::Float, Device::Cpu))),
        Err(Error::NotFourD(5))
    ));
    // A 2-D conv's weights, the 1-input-channel one included (restrided,
    // not left as `contiguous` would), and only 4-D variables.
    let vs = nn::VarStore::new(Device::Cpu);
    let wide = nn::conv2d(vs.root() / "wide", 4, 8, 3, Default::default());
    let narrow = nn::conv2d(vs.root() / "narrow", 1, 8, 3, Default::default());
    assert_eq!(var_store_to_channels_last(&vs).unwrap(), 2);
    assert!(is_channels_last(&wide.ws));
    assert_eq!(narrow.ws.stride(), vec![9, 1, 3, 1]);
    assert_eq!(narrow.bs.as_ref().unwrap().dim(), 1);
}
