//! Event files written by `train::tensorboard` read back with TensorBoard's own loader.

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
