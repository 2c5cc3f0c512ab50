//! The U-Net over every slice of a scan: the book's `segmentCt`.
//!
//! Slice `i`'s input is slices `i − 3 ..= i + 3`, each clamped to the scan
//! (so a scan thinner than 7 slices still works), HU clipped to
//! [−1000, 1000]: the book's `getitem_fullSlice`, the same rule
//! [`shared::seg::context_slice`] gives the segmentation cache. The model
//! runs in eval mode (BatchNorm's running statistics) without autograd,
//! through [`segment_with`], so the compute settings (precision, memory
//! format) act as in training and validation. On the CPU under bf16 it
//! takes the fused path ([`crate::model::fused`]) from an input built
//! already normalised ([`normalized_input`]).
//!
//! Memory: the caller's volume, one batch of inputs and activations on the
//! device, and what the caller keeps per slice ([`segment_scan_with`] hands
//! each slice's probabilities over and keeps nothing).

use std::ops::Range;

use half::bf16;
use shared::hu::{HU_MAX, HU_MIN};
use shared::seg::{context_slice, CONTEXT_SLICES, HU_PLANES};
use shared::volume::Volume;
use tch::{Device, Kind, TchError, Tensor};

use crate::model::compute::ComputeConfig;
use crate::model::{fused, segment_with, UNet};
use crate::torch_threads::{for_each_index, Lent};

/// The book's mask rule: `output_a > 0.5`.
pub const MASK_THRESHOLD: f32 = 0.5;

/// How to run the model over a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentOptions {
    /// Slices per forward pass; only memory and speed depend on it.
    pub batch_size: usize,
    /// Resolved precision and memory format (not `auto`): the weights must
    /// already be in that layout ([`crate::model::prepare_weights`]).
    pub compute: ComputeConfig,
}

impl Default for SegmentOptions {
    /// The book's `--batch-size 4`, in fp32 with contiguous tensors.
    fn default() -> Self {
        SegmentOptions {
            batch_size: 4,
            compute: ComputeConfig::fp32_contiguous(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("volume of shape {shape:?} holds {got} voxels")]
    InconsistentVolume { shape: [usize; 3], got: usize },
    #[error(
        "the U-Net takes {model} input planes; segmentation feeds {HU_PLANES} \
         (each slice and {CONTEXT_SLICES} on either side)"
    )]
    InChannels { model: i64 },
    #[error("the U-Net gives {model} output planes; segmentation reads 1, P(nodule)")]
    Classes { model: i64 },
    #[error(
        "slices of {rows}×{cols} cannot go through a U-Net of depth {depth}: \
         both sides must be multiples of {multiple}"
    )]
    SliceSize {
        rows: usize,
        cols: usize,
        depth: usize,
        multiple: usize,
    },
    #[error("batch size must be at least 1")]
    ZeroBatch,
    #[error("segmenting slices {first}..{end} on {device:?}: {source}")]
    Torch {
        first: usize,
        end: usize,
        device: Device,
        source: TchError,
    },
}

/// The mask `P(nodule) > 0.5` per voxel, `[i][r][c]` like the volume.
pub fn segment_scan(
    model: &UNet,
    volume: &Volume,
    options: SegmentOptions,
) -> Result<Vec<bool>, SegmentError> {
    let mut mask = Vec::with_capacity(volume.voxels.len());
    // Thresholded where it was computed: a byte a voxel comes back, not
    // four, and no float copy of the prediction is made (bf16's `> 0.5` is
    // the float's: the conversion is exact).
    for_each_prediction(model, volume, options, |_, prediction| {
        let set = prediction
            .f_gt(f64::from(MASK_THRESHOLD))?
            .f_to_device(Device::Cpu)?;
        mask.extend(Vec::<bool>::try_from(&set.f_contiguous()?.f_view([-1])?)?);
        Ok(())
    })?;
    Ok(mask)
}

/// P(nodule) per voxel, `[i][r][c]` like the volume (4 bytes a voxel:
/// twice the volume; [`segment_scan`] keeps one).
pub fn segment_probabilities(
    model: &UNet,
    volume: &Volume,
    options: SegmentOptions,
) -> Result<Vec<f32>, SegmentError> {
    let mut probabilities = Vec::with_capacity(volume.voxels.len());
    segment_scan_with(model, volume, options, |_, p| {
        probabilities.extend_from_slice(p)
    })?;
    Ok(probabilities)
}

/// Runs the model over every slice in order, batch by batch on the model's
/// device, and hands each slice's P(nodule) (`rows × cols`, row-major) to
/// `each` with the slice's index.
pub fn segment_scan_with(
    model: &UNet,
    volume: &Volume,
    options: SegmentOptions,
    mut each: impl FnMut(usize, &[f32]),
) -> Result<(), SegmentError> {
    let [_, rows, cols] = volume.shape;
    for_each_prediction(model, volume, options, |first, prediction| {
        let probabilities = to_host(&prediction.f_to_kind(Kind::Float)?)?;
        for (k, plane) in probabilities.chunks_exact(rows * cols).enumerate() {
            each(first + k, plane);
        }
        Ok(())
    })
}

/// Runs the model over every slice in order, batch by batch on the model's
/// device, and hands each batch's prediction `[n, 1, rows, cols]` (in the
/// dtype the model computed it in) to `each` with the batch's first slice.
fn for_each_prediction(
    model: &UNet,
    volume: &Volume,
    options: SegmentOptions,
    mut each: impl FnMut(usize, Tensor) -> Result<(), TchError>,
) -> Result<(), SegmentError> {
    check(model, volume, options)?;
    let [slices, _, _] = volume.shape;
    let device = model.device();
    let _no_grad = tch::no_grad_guard();
    // On the CPU under bf16 the input BatchNorm goes into building the input.
    let affine = model.input_affine();
    for first in (0..slices).step_by(options.batch_size) {
        let end = (first + options.batch_size).min(slices);
        let wrap = |source| SegmentError::Torch {
            first,
            end,
            device,
            source,
        };
        // Asked per batch: a failure of the fused op turns it off for the rest.
        let fused = fused::fused_kind_on(device, options.compute).and_then(|kind| {
            let input = normalized_input(volume, first..end, &affine);
            fused::usable(model.forward_fused_normalized(&input, kind))
        });
        let prediction = match fused {
            Some(p) => p,
            None => {
                let input = batch_input(volume, first..end, device).map_err(wrap)?;
                segment_with(model, input, false, options.compute)
            }
        };
        each(first, prediction).map_err(wrap)?;
    }
    Ok(())
}

fn check(model: &UNet, volume: &Volume, options: SegmentOptions) -> Result<(), SegmentError> {
    let shape = volume.shape;
    if shape.iter().product::<usize>() != volume.voxels.len() {
        return Err(SegmentError::InconsistentVolume {
            shape,
            got: volume.voxels.len(),
        });
    }
    let config = model.config();
    if config.in_channels != HU_PLANES as i64 {
        return Err(SegmentError::InChannels {
            model: config.in_channels,
        });
    }
    if config.n_classes != 1 {
        return Err(SegmentError::Classes {
            model: config.n_classes,
        });
    }
    // Each level but the last halves the slice and the way up doubles it
    // again; an odd size on the way down would not meet its skip.
    let multiple = 1usize << config.depth.saturating_sub(1);
    let [_, rows, cols] = shape;
    if rows % multiple != 0 || cols % multiple != 0 {
        return Err(SegmentError::SliceSize {
            rows,
            cols,
            depth: config.depth,
            multiple,
        });
    }
    if options.batch_size == 0 {
        return Err(SegmentError::ZeroBatch);
    }
    Ok(())
}

/// The float input `[n, 7, rows, cols]` of slices `batch`, on `device`.
///
/// The slices the batch's context reaches are copied to the device once
/// each, as stored (int16), and the 7 planes per slice are picked there:
/// 7 × 2 = 14 times fewer bytes to copy than assembling float planes on the
/// host, which matters when the device is a GPU.
fn batch_input(volume: &Volume, batch: Range<usize>, device: Device) -> Result<Tensor, TchError> {
    let [slices, rows, cols] = volume.shape;
    let plane = rows * cols;
    let lo = batch.start.saturating_sub(CONTEXT_SLICES);
    let hi = (batch.end + CONTEXT_SLICES).min(slices);
    let n = batch.len() as i64;
    let (rows, cols) = (rows as i64, cols as i64);
    let stored = Tensor::f_from_slice(&volume.voxels[lo * plane..hi * plane])?.f_view([
        (hi - lo) as i64,
        rows,
        cols,
    ])?;
    let hu = stored
        .f_to_device(device)?
        .f_to_kind(Kind::Float)?
        .f_clamp(f64::from(HU_MIN), f64::from(HU_MAX))?;
    let picks: Vec<i64> = batch
        .flat_map(|i| (0..HU_PLANES).map(move |k| (context_slice(i, k, slices) - lo) as i64))
        .collect();
    let picks = Tensor::f_from_slice(&picks)?.f_to_device(device)?;
    hu.f_index_select(0, &picks)?
        .f_view([n, HU_PLANES as i64, rows, cols])
}

/// The CPU path's input of slices `batch` in one pass over the volume: each
/// plane clipped to the HU window, through the U-Net's input BatchNorm
/// (`affine`: scale and shift per plane), rounded to bf16 and laid out
/// channels-last, `[n, 7, rows, cols]` with planes fastest. The general
/// path ([`batch_input`], then the model's BatchNorm) makes five passes
/// over float planes for the same values, a tenth of a scan's time.
fn normalized_input(volume: &Volume, batch: Range<usize>, affine: &[(f32, f32)]) -> Tensor {
    let [slices, rows, cols] = volume.shape;
    let plane = rows * cols;
    let n = batch.len();
    // bf16 bit patterns in i16: tch 0.24 tags a `half::bf16` slice as fp16.
    let mut out = vec![0i16; n * plane * HU_PLANES];
    let out_rows = Lent::new(out.chunks_mut(cols * HU_PLANES));
    for_each_index(out_rows.len(), |j| {
        let row: &mut [i16] = &mut out_rows.take(j);
        let (i, r) = (batch.start + j / rows, j % rows);
        for (k, &(scale, shift)) in affine.iter().enumerate().take(HU_PLANES) {
            let start = context_slice(i, k, slices) * plane + r * cols;
            let source = &volume.voxels[start..start + cols];
            for (pixel, &hu) in row.chunks_exact_mut(HU_PLANES).zip(source) {
                let hu = f32::from(hu.clamp(HU_MIN, HU_MAX));
                pixel[k] = bf16::from_f32(hu * scale + shift).to_bits() as i16;
            }
        }
    });
    drop(out_rows);
    let size = [n, rows, cols, HU_PLANES].map(|d| d as i64);
    Tensor::from_slice(&out)
        .view_dtype(Kind::BFloat16)
        .view(size)
        .permute([0, 3, 1, 2])
}

/// The prediction `[n, 1, rows, cols]` as host floats, slice after slice.
fn to_host(prediction: &Tensor) -> Result<Vec<f32>, TchError> {
    // Channels-last or not, one class plane makes the layouts agree; the
    // contiguous copy only costs when they do not.
    let flat = prediction
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    Vec::<f32>::try_from(&flat)
}

#[cfg(test)]
mod tests {
    use shared::geometry::Geometry;
    use tch::nn::VarStore;

    use super::*;
    use crate::model::UNetConfig;

    #[test]
    fn normalized_input_is_batch_input_through_the_input_batchnorm_in_bf16() {
        let [slices, rows, cols] = [9, 8, 12];
        // HU beyond the window on both sides, so the clipping is compared too.
        let voxels = (0..slices * rows * cols)
            .map(|v| ((v * 7919) % 4001) as i16 - 2000)
            .collect();
        let volume = Volume::new([slices, rows, cols], voxels, Geometry::default()).unwrap();
        let vs = VarStore::new(Device::Cpu);
        let unet = UNet::new(&vs.root(), &UNetConfig::default());
        tch::no_grad(|| {
            let variables = vs.variables();
            let set = |name: &str, values: &[f32]| {
                let mut t = variables[name].shallow_clone();
                t.copy_(&Tensor::from_slice(values));
            };
            set(
                "input_batchnorm.running_mean",
                &[-500., -400., -300., -200., -100., 0., 100.],
            );
            set(
                "input_batchnorm.running_var",
                &[9e4, 1e5, 2e5, 3e5, 4e5, 5e5, 6e5],
            );
            set(
                "input_batchnorm.weight",
                &[1.0, 0.5, 2.0, -1.0, 1.5, 0.8, 1.2],
            );
            set(
                "input_batchnorm.bias",
                &[0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 0.25],
            );
        });
        for batch in [0..3, 4..9] {
            let fast = normalized_input(&volume, batch.clone(), &unet.input_affine());
            assert_eq!(fast.kind(), Kind::BFloat16);
            assert!(torch_ext::is_channels_last(&fast));
            let general = batch_input(&volume, batch, Device::Cpu).unwrap();
            let v = vs.variables();
            let bn = |name: &str| v[&format!("input_batchnorm.{name}")].detach();
            let want = general
                .batch_norm(
                    Some(bn("weight")),
                    Some(bn("bias")),
                    Some(bn("running_mean")),
                    Some(bn("running_var")),
                    false,
                    0.1,
                    1e-5,
                    false,
                )
                .to_kind(Kind::BFloat16)
                .to_kind(Kind::Float);
            let got = fast.to_kind(Kind::Float);
            // The affine is folded in f64 and rounded to f32 once, the layer
            // computes (x − mean)·invstd·w + b in f32: at most one bf16 step
            // apart (2⁻⁷ relative), and equal almost everywhere.
            let step = want.abs() * (1.0 / 128.0) + 1e-6;
            let off = (&got - &want).abs().gt_tensor(&step).sum(Kind::Int64);
            assert_eq!(off.int64_value(&[]), 0);
            let equal = got.eq_tensor(&want).sum(Kind::Int64).int64_value(&[]);
            assert!(
                equal * 100 >= 99 * got.numel() as i64,
                "{equal} of {}",
                got.numel()
            );
        }
    }
}
