//! Event files written by `train::tensorboard` read back with TensorBoard's own loader.

use tch::nn::VarStore;
use tch::{Device, Kind, Reduction, Tensor};
use train::model::{BiasInit, LunaModel};
use train::run::activations::ActivationProbe;
use train::run::param_histograms::{parameter_histograms, PARAMETER_HISTOGRAM_BUCKETS};
use train::run::tensorboard::{pr_curve_data, EventWriter, PR_CURVE_THRESHOLDS};

const READ_BACK: &str = r#"
import json, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.util import tensor_util
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {}, "histograms": {}, "tensors": {}, "plugins": {}}
for t in tags["scalars"]:
    out["scalars"][t] = [[e.step, e.value] for e in acc.Scalars(t)]
for t in tags["histograms"]:
    out["histograms"][t] = [
        {"step": e.step, "min": e.histogram_value.min, "max": e.histogram_value.max,
         "num": e.histogram_value.num, "sum": e.histogram_value.sum,
         "limits": list(e.histogram_value.bucket_limit), "counts": list(e.histogram_value.bucket)}
        for e in acc.Histograms(t)]
for t in tags["tensors"]:
    out["tensors"][t] = [{"step": e.step, "shape": list(tensor_util.make_ndarray(e.tensor_proto).shape),
                          "values": tensor_util.make_ndarray(e.tensor_proto).reshape(-1).tolist()}
                         for e in acc.Tensors(t)]
for t in tags["tensors"]:
    out["plugins"][t] = acc.SummaryMetadata(t).plugin_data.plugin_name
from tensorboard.plugins.pr_curve import plugin_data_pb2
meta = acc.SummaryMetadata("pr")
pd = plugin_data_pb2.PrCurvePluginData.FromString(meta.plugin_data.content)
out["pr_thresholds"] = pd.num_thresholds
print(json.dumps(out))
"#;

#[test]
fn scalars_histograms_and_pr_curve_read_back_with_tensorboard() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("2026-01-01_00.00.00-trn_cls-test");
    let mut w = EventWriter::create(&run).unwrap();
    w.scalars(320, &[("loss/all", 0.75), ("pr/recall", 0.5)])
        .unwrap();
    w.scalars(640, &[("loss/all", 0.25), ("pr/recall", 1.0)])
        .unwrap();
    let probs = [0.05f32, 0.5, 0.51, 0.99, 1.0, 0.3];
    w.probability_histogram("is_neg", 640, &probs).unwrap();
    w.probability_histogram("is_pos", 640, &[]).unwrap();
    let labels = [false, true, true, true, false, false];
    w.pr_curve("pr", 640, &labels, &probs).unwrap();
    w.flush().unwrap();
    assert!(w
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("events.out.tfevents."));

    let got = crate::common::run_python(READ_BACK, &[run.as_os_str()]);

    assert_eq!(
        got["scalars"]["loss/all"],
        serde_json::json!([[320, 0.75], [640, 0.25]])
    );
    assert_eq!(
        got["scalars"]["pr/recall"],
        serde_json::json!([[320, 0.5], [640, 1.0]])
    );

    let h = &got["histograms"]["is_neg"][0];
    assert_eq!(h["step"], 640);
    assert_eq!(h["num"], 6.0);
    assert_eq!(h["min"].as_f64().unwrap() as f32, 0.05);
    assert_eq!(h["max"], 1.0);
    let counts: Vec<f64> = serde_json::from_value(h["counts"].clone()).unwrap();
    assert_eq!(counts.len(), 50);
    assert_eq!(counts.iter().sum::<f64>(), 6.0);
    // 0.05 → bin 2, 0.3 → 15, 0.5 → 25, 0.51 → 25, 0.99 and 1.0 → 49 (last bin closed).
    assert_eq!(
        (counts[2], counts[15], counts[25], counts[49]),
        (1.0, 1.0, 2.0, 2.0)
    );
    assert!(
        got["histograms"].get("is_pos").is_none(),
        "empty histograms are skipped"
    );

    let pr = &got["tensors"]["pr"][0];
    assert_eq!(got["plugins"]["pr"], "pr_curves");
    assert_eq!(got["pr_thresholds"], PR_CURVE_THRESHOLDS);
    assert_eq!(pr["step"], 640);
    assert_eq!(pr["shape"], serde_json::json!([6, PR_CURVE_THRESHOLDS]));
    let values: Vec<f32> = serde_json::from_value(pr["values"].clone()).unwrap();
    assert_eq!(values, pr_curve_data(&labels, &probs, PR_CURVE_THRESHOLDS));
    // Lowest threshold: everything is predicted positive: TP 3, FP 3, precision 0.5, recall 1.
    let n = PR_CURVE_THRESHOLDS;
    assert_eq!(
        (values[0], values[n], values[4 * n], values[5 * n]),
        (3.0, 3.0, 0.5, 1.0)
    );
}

#[test]
fn pr_curve_matches_torch_tensorboard_compute_curve() {
    let labels: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
    let probs: Vec<f32> = (0..40).map(|i| ((i * 37) % 41) as f32 / 40.0).collect();
    let script = r#"
import json, sys
import numpy as np
from torch.utils.tensorboard.summary import compute_curve
labels = np.array(json.loads(sys.argv[1]))
preds = np.array(json.loads(sys.argv[2]), dtype=np.float32)
print(json.dumps(compute_curve(labels, preds, num_thresholds=127).reshape(-1).tolist()))
"#;
    let l = serde_json::to_string(&labels.iter().map(|&b| b as u8).collect::<Vec<_>>()).unwrap();
    let p = serde_json::to_string(&probs).unwrap();
    let expected: Vec<f64> =
        serde_json::from_value(crate::common::run_python(script, &[l.as_ref(), p.as_ref()]))
            .unwrap();
    let got = pr_curve_data(&labels, &probs, PR_CURVE_THRESHOLDS);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!((*g as f64 - e).abs() < 1e-5, "value {i}: {g} vs {e}");
    }
}

/// Reads histograms and images back with TensorBoard's `EventAccumulator`;
/// compares each histogram with numpy's over the tensor saved under its tag
/// in the safetensors file `argv[2]`, and the input image with the grid
/// recomputed from the crops saved there as `input`.
const READ_BACK_HISTOGRAMS_AND_IMAGES: &str = r#"
import io, json, sys
import numpy as np
from PIL import Image
from safetensors.numpy import load_file
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.HISTOGRAMS: 0, ea.IMAGES: 0})
acc.Reload()
saved = load_file(sys.argv[2])
bins = int(sys.argv[3])
out = {"histograms": {}, "images": {}}
for tag in acc.Tags()["histograms"]:
    events = acc.Histograms(tag)
    h = events[0].histogram_value
    x = saved[tag].astype(np.float64).ravel()
    expected, _ = np.histogram(x, bins=bins, range=(x.min(), x.max()))
    out["histograms"][tag] = {
        "steps": [e.step for e in events], "num": h.num, "size": int(x.size),
        "min": [h.min, float(x.min())], "max": [h.max, float(x.max())],
        "sum": [h.sum, float(x.sum())], "sum_squares": [h.sum_squares, float((x * x).sum())],
        "counts": list(h.bucket), "numpy_counts": expected.tolist(),
        "limits": len(h.bucket_limit)}
decoded = {}
for tag in acc.Tags()["images"]:
    events = acc.Images(tag)
    img = Image.open(io.BytesIO(events[0].encoded_image_string))
    decoded[tag] = np.asarray(img)
    out["images"][tag] = {"steps": [e.step for e in events], "width": events[0].width,
                          "height": events[0].height, "decoded": [img.width, img.height], "mode": img.mode}
crops = saved["input"]
mid = crops[:, 0, crops.shape[2] // 2].astype(np.float32)
lo = mid.min(axis=(1, 2), keepdims=True)
rng = np.maximum(mid.max(axis=(1, 2), keepdims=True) - lo, np.finfo(np.float32).tiny)
tiles = np.clip(np.round((mid - lo) / rng * np.float32(255)), 0, 255).astype(np.int64)
n, h, w = tiles.shape
grid = np.full((n * h + n - 1, w), 128, dtype=np.int64)
for k in range(n):
    grid[k * (h + 1):k * (h + 1) + h] = tiles[k]
got = decoded["activations/input"].astype(np.int64)
out["input_shape"] = [list(got.shape), list(grid.shape)]
out["input_max_diff"] = int(np.abs(got - grid).max()) if got.shape == grid.shape else None
print(json.dumps(out))
"#;

#[test]
fn parameter_histograms_and_activation_images_read_back_with_tensorboard() {
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
    let x = Tensor::randn([4, 1, 32, 48, 48], (Kind::Float, Device::Cpu)) * 300.0 - 500.0;
    let labels = Tensor::from_slice(&[1i64, 0, 1, 0]);
    let (logits, _) = model.forward(&x, true);
    logits
        .cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0)
        .backward();

    let histograms = parameter_histograms(&vs).unwrap();
    let probe = ActivationProbe {
        indices: vec![0, 1, 2, 3],
        images: x.shallow_clone(),
    };
    let images = probe.images(&model.forward_blocks(&x)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let mut w = EventWriter::create(&events).unwrap();
    w.histograms(96, &histograms).unwrap();
    w.images(128, &images).unwrap();
    w.flush().unwrap();
    let mut saved: Vec<(String, Tensor)> = vec![("input".to_owned(), x.shallow_clone())];
    for (name, t) in vs.variables() {
        if t.requires_grad() {
            saved.push((format!("weights/{name}"), t.detach()));
            saved.push((format!("grads/{name}"), t.grad()));
        }
    }
    let tensors = dir.path().join("tensors.safetensors");
    Tensor::write_safetensors(&saved, &tensors).unwrap();

    let bins = PARAMETER_HISTOGRAM_BUCKETS.to_string();
    let got = crate::common::run_python(
        READ_BACK_HISTOGRAMS_AND_IMAGES,
        &[events.as_os_str(), tensors.as_os_str(), bins.as_ref()],
    );

    // Every trainable tensor of the book's model (tail batch norm, 8 convs,
    // head: 20) twice, weights and gradient.
    let read = got["histograms"].as_object().unwrap();
    assert_eq!(read.len(), saved.len() - 1);
    assert_eq!(read.len(), 40);
    for (tag, h) in read {
        let close = |key: &str| {
            let pair = h[key].as_array().unwrap();
            let (ours, numpy) = (pair[0].as_f64().unwrap(), pair[1].as_f64().unwrap());
            assert!(
                (ours - numpy).abs() <= 1e-9 * numpy.abs().max(1.0),
                "{tag} {key}: {ours} vs numpy {numpy}"
            );
        };
        assert_eq!(h["steps"], serde_json::json!([96]), "{tag}");
        assert_eq!(h["num"].as_f64(), h["size"].as_f64(), "{tag}");
        assert_eq!(h["limits"], PARAMETER_HISTOGRAM_BUCKETS, "{tag}");
        for key in ["min", "max", "sum", "sum_squares"] {
            close(key);
        }
        let counts: Vec<f64> = serde_json::from_value(h["counts"].clone()).unwrap();
        let numpy: Vec<f64> = serde_json::from_value(h["numpy_counts"].clone()).unwrap();
        assert_eq!(
            counts, numpy,
            "{tag}: bucket counts differ from numpy.histogram"
        );
        assert_eq!(counts.iter().sum::<f64>(), h["size"].as_f64().unwrap());
    }

    // Input 48×48 tiles, one per sample; block tiles enlarged to 24 px
    // (16×24×24 → 24, 12 → ×2, 6 → ×4, 3 → ×8), one per channel.
    let expected = [
        ("activations/input", 48, 4 * 48 + 3),
        ("activations/block1", 8 * 24 + 7, 4 * 24 + 3),
        ("activations/block2", 16 * 24 + 15, 4 * 24 + 3),
        ("activations/block3", 32 * 24 + 31, 4 * 24 + 3),
        ("activations/block4", 64 * 24 + 63, 4 * 24 + 3),
    ];
    let read = got["images"].as_object().unwrap();
    assert_eq!(read.len(), expected.len());
    for (tag, width, height) in expected {
        let image = &read[tag];
        assert_eq!(image["steps"], serde_json::json!([128]), "{tag}");
        assert_eq!(
            (image["width"].as_u64(), image["height"].as_u64()),
            (Some(width), Some(height)),
            "{tag}"
        );
        assert_eq!(
            image["decoded"],
            serde_json::json!([width, height]),
            "{tag}"
        );
        assert_eq!(image["mode"], "L", "{tag}: 8-bit grey");
    }
    assert_eq!(got["input_shape"][0], got["input_shape"][1]);
    // numpy rounds in float32 too; a value on a .5 may land one grey level apart.
    let diff = got["input_max_diff"].as_u64().unwrap();
    assert!(
        diff <= 1,
        "input image differs from numpy's grid by {diff} grey levels"
    );
}
