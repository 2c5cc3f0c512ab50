//! `--tb-histograms-every`: histograms of every trainable parameter's
//! weights and gradient. The buckets are counted on the device and all of a
//! step's histograms come back in one small host read (a few dozen numbers
//! per parameter), never the parameters themselves.

use tch::nn::VarStore;
use tch::{Device, Kind, TchError, Tensor};

use super::tensorboard::proto::HistogramProto;

/// Equal-width buckets over `[min, max]` of each histogram.
pub const PARAMETER_HISTOGRAM_BUCKETS: usize = 30;

/// Per tensor, before the bucket counts: count, min, max, sum, sum of squares.
const STATS: usize = 5;

/// `weights/<name>` for each trainable variable of `vs` and `grads/<name>`
/// for each that has a gradient, in name order. Non-finite values (an fp16
/// step that overflowed) are left out of every figure; a tensor with no
/// finite value gets no histogram.
pub fn parameter_histograms(vs: &VarStore) -> Result<Vec<(String, HistogramProto)>, TchError> {
    let mut params: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tensors = Vec::with_capacity(2 * params.len());
    for (name, t) in &params {
        tensors.push((format!("weights/{name}"), t.detach()));
    }
    for (name, t) in &params {
        let grad = t.grad();
        if grad.defined() {
            tensors.push((format!("grads/{name}"), grad));
        }
    }
    histograms(tensors, PARAMETER_HISTOGRAM_BUCKETS)
}

/// Histograms of `tensors` over `buckets` equal-width buckets each.
pub fn histograms(
    tensors: Vec<(String, Tensor)>,
    buckets: usize,
) -> Result<Vec<(String, HistogramProto)>, TchError> {
    if tensors.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tch::no_grad(|| {
        tensors
            .iter()
            .map(|(_, t)| device_histogram(t, buckets as i64))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let host = Vec::<f64>::try_from(Tensor::f_cat(&rows, 0)?.f_to_device(Device::Cpu)?)?;
    let width = STATS + buckets;
    Ok(tensors
        .into_iter()
        .zip(host.chunks_exact(width))
        .filter_map(|((tag, _), row)| host_histogram(row, buckets).map(|h| (tag, h)))
        .collect())
}

/// `[count, min, max, sum, sum of squares, bucket counts…]` as float64 on
/// `t`'s device, over the finite values of `t`.
fn device_histogram(t: &Tensor, buckets: i64) -> Result<Tensor, TchError> {
    let x = t.f_flatten(0, -1)?.f_to_kind(Kind::Double)?;
    let bad = x.f_isfinite()?.f_logical_not()?;
    let count = bad.f_logical_not()?.f_sum(Kind::Double)?;
    let min = x.f_masked_fill(&bad, f64::INFINITY)?.f_min()?;
    let max = x.f_masked_fill(&bad, f64::NEG_INFINITY)?.f_max()?;
    let clean = x.f_masked_fill(&bad, 0.0)?;
    let sum = clean.f_sum(Kind::Double)?;
    let sum_squares = clean.f_square()?.f_sum(Kind::Double)?;
    let (lo, hi) = bucket_range_on_device(&min, &max)?;
    let per_unit = (hi - &lo).f_reciprocal()? * buckets as f64;
    // Bucket `buckets` collects the non-finite values and is dropped below.
    let index = ((clean - lo) * per_unit)
        .f_floor()?
        .f_clamp(0.0, (buckets - 1) as f64)?
        .f_nan_to_num(0.0, None, None)?
        .f_to_kind(Kind::Int64)?
        .f_masked_fill(&bad, buckets)?;
    let counts = index
        .f_bincount(None::<Tensor>, buckets + 1)?
        .f_narrow(0, 0, buckets)?
        .f_to_kind(Kind::Double)?;
    let stats = Tensor::f_stack(&[count, min, max, sum, sum_squares], 0)?;
    Tensor::f_cat(&[stats, counts], 0)
}

/// numpy's choice for a constant tensor: a range of width 1 around it.
fn bucket_range_on_device(min: &Tensor, max: &Tensor) -> Result<(Tensor, Tensor), TchError> {
    let half = max.f_eq_tensor(min)?.f_to_kind(Kind::Double)? * 0.5;
    Ok((min - &half, max + half))
}

fn bucket_range(min: f64, max: f64) -> (f64, f64) {
    if min == max {
        (min - 0.5, max + 0.5)
    } else {
        (min, max)
    }
}

/// The proto of one row of [`device_histogram`]; `None` without a finite value.
fn host_histogram(row: &[f64], buckets: usize) -> Option<HistogramProto> {
    let (count, min, max, sum, sum_squares) = (row[0], row[1], row[2], row[3], row[4]);
    if count == 0.0 {
        return None;
    }
    let (lo, hi) = bucket_range(min, max);
    let step = (hi - lo) / buckets as f64;
    let mut bucket_limit: Vec<f64> = (1..buckets).map(|i| lo + i as f64 * step).collect();
    bucket_limit.push(hi);
    Some(HistogramProto {
        min,
        max,
        num: count,
        sum,
        sum_squares,
        bucket_limit,
        bucket: row[STATS..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(values: &[f32], buckets: usize) -> Option<HistogramProto> {
        let t = Tensor::from_slice(values);
        histograms(vec![("t".to_owned(), t)], buckets)
            .unwrap()
            .pop()
            .map(|(_, h)| h)
    }

    #[test]
    fn equal_width_buckets_over_min_to_max_with_the_maximum_in_the_last() {
        // Range [0, 4], 4 buckets of width 1: [0,1) [1,2) [2,3) [3,4].
        let h = one(&[0.0, 0.5, 1.0, 2.5, 3.0, 4.0, 4.0], 4).unwrap();
        assert_eq!(h.bucket, vec![2.0, 1.0, 1.0, 3.0]);
        assert_eq!(h.bucket_limit, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((h.min, h.max, h.num), (0.0, 4.0, 7.0));
        assert_eq!(h.sum, 15.0);
        assert_eq!(h.sum_squares, 0.25 + 1.0 + 6.25 + 9.0 + 16.0 + 16.0);
    }

    #[test]
    fn non_finite_values_are_left_out_and_a_constant_gets_a_unit_range() {
        let h = one(&[f32::NAN, 2.0, f32::INFINITY, 2.0], 2).unwrap();
        assert_eq!((h.min, h.max, h.num, h.sum), (2.0, 2.0, 2.0, 4.0));
        assert_eq!(h.bucket_limit, vec![2.0, 2.5]);
        assert_eq!(h.bucket, vec![0.0, 2.0]);
        assert!(one(&[f32::NAN, f32::NEG_INFINITY], 3).is_none());
    }

    #[test]
    fn every_trainable_parameter_and_gradient_gets_one() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[3, 4], 0.0, 1.0);
        let _frozen = vs.root().zeros_no_train("running_mean", &[4]);
        let b = vs.root().zeros("b", &[3]);
        let before = parameter_histograms(&vs).unwrap();
        let tags: Vec<&str> = before.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tags, ["weights/b", "weights/w"], "no gradients yet");
        (w.sum(Kind::Float) * 2.0 + b.sum(Kind::Float)).backward();
        let after = parameter_histograms(&vs).unwrap();
        let tags: Vec<&str> = after.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tags, ["weights/b", "weights/w", "grads/b", "grads/w"]);
        let grad_w = &after[3].1;
        assert_eq!((grad_w.min, grad_w.max, grad_w.num), (2.0, 2.0, 12.0));
        assert_eq!(grad_w.bucket.iter().sum::<f64>(), 12.0);
        let weights_w = &after[1].1;
        let host = Vec::<f64>::try_from(w.detach().flatten(0, -1).to_kind(Kind::Double)).unwrap();
        let min = host.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(weights_w.min, min);
        assert_eq!(weights_w.bucket.len(), PARAMETER_HISTOGRAM_BUCKETS);
    }
}
