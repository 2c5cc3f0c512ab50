//! oneDNN's fused convolution + activation equals the two ops run apart.

use tch::{Device, Kind, Tensor};
use torch_ext::{conv_pointwise, conv_pointwise_available, ConvGeometry, PostOp};

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float))
        .abs()
        .max()
        .double_value(&[])
}

#[test]
fn fused_conv2d_and_conv3d_equal_conv_then_activation() {
    assert!(
        conv_pointwise_available(),
        "libtorch without mkldnn::_convolution_pointwise"
    );
    tch::manual_seed(3);
    let opts = (Kind::Float, Device::Cpu);
    let x2 = Tensor::randn([2, 7, 20, 24], opts);
    let w2 = Tensor::randn([16, 7, 3, 3], opts) * 0.2;
    let b2 = Tensor::randn([16], opts);
    let x3 = Tensor::randn([2, 1, 8, 12, 12], opts);
    let w3 = Tensor::randn([8, 1, 3, 3, 3], opts) * 0.3;
    let b3 = Tensor::randn([8], opts);
    let plain2 = x2.conv2d(&w2, Some(&b2), [1, 1], [1, 1], [1, 1], 1);
    let plain3 = x3.conv3d(&w3, Some(&b3), [1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
    let cases = [
        (PostOp::None, plain2.shallow_clone()),
        (PostOp::Relu, plain2.relu()),
        (PostOp::LeakyRelu(0.01), plain2.leaky_relu()),
        (
            PostOp::LeakyRelu(0.2),
            plain2.clamp_min(0.0) + plain2.clamp_max(0.0) * 0.2,
        ),
        (PostOp::Sigmoid, plain2.sigmoid()),
    ];
    for (post, want) in cases {
        let got = conv_pointwise(&x2, &w2, Some(&b2), &ConvGeometry::same(2, 1), post).unwrap();
        assert_eq!(got.size(), want.size());
        assert!(
            max_diff(&got, &want) < 1e-4,
            "{post:?}: {}",
            max_diff(&got, &want)
        );
    }
    let got = conv_pointwise(&x3, &w3, Some(&b3), &ConvGeometry::same(3, 1), PostOp::Relu).unwrap();
    assert!(max_diff(&got, &plain3.relu()) < 1e-4);
    let unbiased = conv_pointwise(&x3, &w3, None, &ConvGeometry::same(3, 1), PostOp::None).unwrap();
    let want = x3.conv3d::<Tensor>(&w3, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
    assert!(max_diff(&unbiased, &want) < 1e-4);
}

#[test]
fn fused_conv_in_bf16_keeps_the_dtype_and_channels_last() {
    tch::manual_seed(4);
    let opts = (Kind::Float, Device::Cpu);
    let x = torch_ext::contiguous_channels_last(&Tensor::randn([2, 4, 16, 16], opts))
        .unwrap()
        .to_kind(Kind::BFloat16);
    let w = (Tensor::randn([8, 4, 3, 3], opts) * 0.3).to_kind(Kind::BFloat16);
    let b = Tensor::randn([8], opts).to_kind(Kind::BFloat16);
    let got = conv_pointwise(&x, &w, Some(&b), &ConvGeometry::same(2, 1), PostOp::Relu).unwrap();
    assert_eq!(got.kind(), Kind::BFloat16);
    assert!(torch_ext::is_channels_last(&got));
    let want = x.conv2d(&w, Some(&b), [1, 1], [1, 1], [1, 1], 1).relu();
    // Both round oneDNN's fp32 accumulator to bf16 once, so ReLU (which
    // commutes with the rounding) leaves them equal to within one bf16 step.
    assert!(max_diff(&got, &want) <= 0.0625, "{}", max_diff(&got, &want));
}

#[test]
fn fused_conv_refuses_mismatched_geometry_and_shapes() {
    let x = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let w = Tensor::zeros([4, 2, 3, 3], (Kind::Float, Device::Cpu));
    let bad = ConvGeometry {
        padding: vec![1, 1],
        stride: vec![1],
        dilation: vec![1, 1],
        groups: 1,
    };
    assert!(conv_pointwise(&x, &w, None, &bad, PostOp::None).is_err());
    // 3 input channels against a weight for 2: libtorch's error, not a crash.
    let err = conv_pointwise(&x, &w, None, &ConvGeometry::same(2, 1), PostOp::None).unwrap_err();
    assert!(!err.to_string().is_empty());
}

/// The 2×2×2 max pool is libtorch's `max_pool3d(2, 2)`, bit for bit: the
/// shim's bf16 channels-last kernel (channels in eights: signs, zeros,
/// infinities, a NaN) and the cases it leaves to libtorch.
#[test]
fn max_pool3d_2x_is_libtorchs() {
    tch::manual_seed(9);
    for kind in [Kind::BFloat16, Kind::Float] {
        for shape in [
            [2i64, 8, 6, 10, 12],
            [1, 16, 5, 7, 9],
            [3, 64, 2, 2, 2],
            [1, 3, 4, 4, 4],
        ] {
            let x = Tensor::randn(shape, (Kind::Float, Device::Cpu)).to_kind(kind);
            let _ = x.get(0).get(0).get(0).get(0).get(0).fill_(f64::NAN);
            let _ = x
                .get(0)
                .get(1)
                .get(0)
                .get(0)
                .get(1)
                .fill_(f64::NEG_INFINITY);
            let _ = x.get(0).get(2).get(1).get(1).get(1).fill_(-0.0);
            for x in [
                x.shallow_clone(),
                torch_ext::contiguous_channels_last_3d(&x).unwrap(),
            ] {
                let want = x.max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false);
                let got = torch_ext::max_pool3d_2x(&x).unwrap();
                let what = format!("{kind:?} {shape:?} {:?}", x.stride());
                assert_eq!(got.size(), want.size(), "{what}");
                assert_eq!(got.stride(), want.stride(), "{what}: layout");
                assert_eq!(
                    got.get(0)
                        .get(0)
                        .get(0)
                        .get(0)
                        .get(0)
                        .isnan()
                        .int64_value(&[]),
                    1
                );
                let nan_where = got.isnan().eq_tensor(&want.isnan()).all().int64_value(&[]);
                let values = got
                    .nan_to_num(0.0, None, None)
                    .equal(&want.nan_to_num(0.0, None, None));
                assert!(nan_where == 1 && values, "{what}");
            }
        }
    }
    let err = torch_ext::max_pool3d_2x(&Tensor::zeros([2, 3, 4], (Kind::Float, Device::Cpu)));
    assert!(err.unwrap_err().to_string().contains("[N, C, D, H, W]"));
}
