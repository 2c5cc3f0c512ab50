//! A segmentation phase's rows (chapter 13): per sample its Dice loss and
//! its pixel counts, kept on the device and read back once, as the
//! classifier's [`MetricRows`](super::MetricRows) are.

use tch::{Device, Kind, Tensor};

use super::metrics::{Confusion, EpochMetrics, THRESHOLD};

/// Per sample: loss, TP, FN, FP, TN pixels.
pub struct PixelRows {
    rows: Tensor,
    filled: i64,
}

impl PixelRows {
    pub fn new(capacity: usize, device: Device) -> Self {
        PixelRows {
            rows: Tensor::zeros([5, capacity as i64], (Kind::Double, device)),
            filled: 0,
        }
    }

    /// Appends a batch: Dice `loss` `[n]`, P(nodule) per pixel `prediction`
    /// and the 0/1 mask `label`, both `[n, 1, H, W]`; a pixel is called
    /// positive when P > [`THRESHOLD`] (the book's rule).
    pub fn push(&mut self, loss: &Tensor, prediction: &Tensor, label: &Tensor) {
        let n = loss.size()[0];
        let called = prediction.detach().gt(THRESHOLD);
        let label = label.to_kind(Kind::Bool);
        let count = |t: Tensor| t.flatten(1, -1).sum_dim_intlist(1, false, Kind::Double);
        let batch = Tensor::stack(
            &[
                loss.detach().to_kind(Kind::Double),
                count(called.logical_and(&label)),
                count(called.logical_not().logical_and(&label)),
                count(called.logical_and(&label.logical_not())),
                count(called.logical_not().logical_and(&label.logical_not())),
            ],
            0,
        );
        self.rows.narrow(1, self.filled, n).copy_(&batch);
        self.filled += n;
    }

    /// The phase's metrics over every pixel of its samples.
    pub fn metrics(&self) -> EpochMetrics {
        let sums = self
            .rows
            .narrow(1, 0, self.filled)
            .sum_dim_intlist(1, false, Kind::Double)
            .to_device(Device::Cpu);
        let sums = Vec::<f64>::try_from(sums).unwrap_or_default();
        let [loss, tp, fn_, fp, tn] = [0, 1, 2, 3, 4].map(|i| sums.get(i).copied().unwrap_or(0.0));
        let confusion = Confusion {
            tp: tp as u64,
            fp: fp as u64,
            tn: tn as u64,
            fn_: fn_ as u64,
        };
        EpochMetrics::from_pixels(confusion, loss, self.filled as u64)
    }
}
