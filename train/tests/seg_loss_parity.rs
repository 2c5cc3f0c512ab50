//! Chapter 13's loss and per-pixel metrics equal a transcription of the
//! book's `computeBatchLoss`, `diceLoss` and `logMetrics` on the same batch.

use crate::pytorch_support::run_python;
use tch::{Device, Kind, Tensor};
use train::evaluate::pixels::PixelRows;
use train::model::seg_loss::segmentation_loss;

/// The same batch in both languages: P from `sin`, the mask from `cos`.
const BATCH_PY: &str = r#"
i = torch.arange(4 * 1 * 16 * 16, dtype=torch.float32)
prediction_g = torch.sigmoid((i * 0.37).sin() * 3.0).view(4, 1, 16, 16)
label_g = ((i * 0.11).cos() > 0.6).view(4, 1, 16, 16)
"#;

fn batch() -> (Tensor, Tensor) {
    let i = Tensor::arange(4 * 16 * 16, (Kind::Float, Device::Cpu));
    let prediction = ((&i * 0.37).sin() * 3.0).sigmoid().view([4, 1, 16, 16]);
    let label = (&i * 0.11).cos().gt(0.6).view([4, 1, 16, 16]);
    (prediction, label)
}

#[test]
fn dice_losses_and_pixel_metrics_are_the_books() {
    let script = format!(
        r#"
import json, torch
{BATCH_PY}
def diceLoss(prediction_g, label_g, epsilon=1):
    diceLabel_g = label_g.sum(dim=[1,2,3])
    dicePrediction_g = prediction_g.sum(dim=[1,2,3])
    diceCorrect_g = (prediction_g * label_g).sum(dim=[1,2,3])
    diceRatio_g = (2 * diceCorrect_g + epsilon) / (dicePrediction_g + diceLabel_g + epsilon)
    return 1 - diceRatio_g
diceLoss_g = diceLoss(prediction_g, label_g)
fnLoss_g = diceLoss(prediction_g * label_g, label_g)
total = diceLoss_g.mean() + fnLoss_g.mean() * 8
predictionBool_g = (prediction_g[:, 0:1] > 0.5).to(torch.float32)
tp = (predictionBool_g * label_g).sum(dim=[1,2,3]).sum().item()
fn = ((1 - predictionBool_g) * label_g).sum(dim=[1,2,3]).sum().item()
fp = (predictionBool_g * (~label_g)).sum(dim=[1,2,3]).sum().item()
precision = tp / (tp + fp); recall = tp / (tp + fn)
print(json.dumps(dict(dice=diceLoss_g.tolist(), total=total.item(), loss_all=diceLoss_g.mean().item(),
    tp=tp, fn=fn, fp=fp, percent_tp=tp / (tp + fn) * 100, precision=precision, recall=recall,
    f1=2 * precision * recall / (precision + recall))))
"#
    );
    let got = run_python(&script, &[]);
    let (prediction, label) = batch();
    let loss = segmentation_loss(&prediction, &label);
    let dice = Vec::<f32>::try_from(&loss.dice).unwrap();
    let theirs: Vec<f64> = serde_json::from_value(got["dice"].clone()).unwrap();
    for (a, b) in dice.iter().zip(&theirs) {
        assert!(
            (f64::from(*a) - b).abs() < 1e-6,
            "dice {dice:?} vs {theirs:?}"
        );
    }
    let total = loss.total.double_value(&[]);
    assert!(
        (total - got["total"].as_f64().unwrap()).abs() < 1e-5,
        "{total} vs {}",
        got["total"]
    );

    let mut rows = PixelRows::new(8, Device::Cpu);
    rows.push(&loss.dice, &prediction, &label);
    let m = rows.metrics();
    let c = m.confusion;
    assert_eq!(
        [c.tp, c.fn_, c.fp].map(|v| v as f64),
        ["tp", "fn", "fp"].map(|k| got[k].as_f64().unwrap())
    );
    assert_eq!(c.tp + c.fn_ + c.fp + c.tn, 4 * 16 * 16);
    for (ours, key) in [
        (m.loss_all, "loss_all"),
        (m.correct_pos, "percent_tp"),
        (m.precision, "precision"),
        (m.recall, "recall"),
        (m.f1, "f1"),
    ] {
        let theirs = got[key].as_f64().unwrap();
        assert!((ours - theirs).abs() < 1e-6, "{key}: {ours} vs {theirs}");
    }
    assert!(
        m.loss_neg.is_nan() && m.loss_pos.is_nan(),
        "no per-class loss"
    );
}
