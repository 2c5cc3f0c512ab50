//! One segmentation sample cut from a scan and its nodule mask: the book's
//! training crop (`TrainingLuna2dSegmentationDataset.getitem_trainingCrop`
//! before its random 64×64 offset) and its full slice with context
//! (`Luna2dSegmentationDataset.getitem_fullSlice`).

use crate::crop::{crop_start_for, CropError};
use crate::geometry::Irc;
use crate::hu::clip_hu;
use crate::volume::Volume;

use super::{CHUNK_PLANES, CONTEXT_SLICES, HU_PLANES, TRAIN_CROP};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegError {
    #[error("volume of shape {shape:?} holds {got} voxels")]
    InconsistentVolume { shape: [usize; 3], got: usize },
    #[error("mask holds {got} voxels, the volume of shape {shape:?} has {expected}")]
    MaskSize {
        shape: [usize; 3],
        expected: usize,
        got: usize,
    },
    #[error("volume of shape {shape:?} has no slices")]
    NoSlices { shape: [usize; 3] },
    #[error("slice {index} requested from a volume of {slices} slices")]
    SliceOutside { index: usize, slices: usize },
    /// The volume is smaller than the (7, 96, 96) crop, or the centre lies
    /// outside it.
    #[error("training crop: {0}")]
    Crop(#[from] CropError),
    #[error("chunk of {got} voxels is not {planes} planes of {plane} voxels")]
    ChunkSize {
        planes: usize,
        plane: usize,
        got: usize,
    },
}

/// Seven HU planes (clipped to [`crate::hu`]'s window) and one mask plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegSample {
    /// `[plane][row][col]`, [`HU_PLANES`] planes of `rows × cols`.
    pub hu: Vec<i16>,
    /// `[row][col]`: the nodule mask of volume slice `mask_slice`.
    pub mask: Vec<bool>,
    pub rows: usize,
    pub cols: usize,
    /// Volume index (i, r, c) of the sample's first voxel; a full slice's
    /// context can repeat slices, so its `start[0]` is `mask_slice - 3`
    /// before clamping, saturated at 0.
    pub start: [usize; 3],
    /// The volume slice the mask comes from: plane 3 of the sample.
    pub mask_slice: usize,
}

impl SegSample {
    /// The cache chunk: the HU planes, then the mask as 0/1
    /// ([`CHUNK_PLANES`] planes, see [`super`]).
    pub fn to_chunk(&self) -> Vec<i16> {
        let mut chunk = Vec::with_capacity(CHUNK_PLANES * self.rows * self.cols);
        chunk.extend_from_slice(&self.hu);
        chunk.extend(self.mask.iter().map(|&m| i16::from(m)));
        chunk
    }
}

fn check(volume: &Volume, mask: &[bool]) -> Result<(), SegError> {
    let shape = volume.shape;
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected != Some(volume.voxels.len()) {
        return Err(SegError::InconsistentVolume {
            shape,
            got: volume.voxels.len(),
        });
    }
    if mask.len() != volume.voxels.len() {
        return Err(SegError::MaskSize {
            shape,
            expected: volume.voxels.len(),
            got: mask.len(),
        });
    }
    Ok(())
}

/// The book's training sample for a positive candidate centred at
/// `centre_irc`: the (7, 96, 96) crop, shifted inside the volume as the
/// classifier's crops are ([`crop_start_for`]), and the mask of the crop's
/// centre slice (the book's `pos_a[3:4]`). With an even centre slice the
/// book's rounding puts the crop one slice low (see [`crop_start_for`]), so
/// `mask_slice` is then `centre_irc[0] - 1`: kept, as the book trains on it.
pub fn training_sample(
    volume: &Volume,
    mask: &[bool],
    centre_irc: Irc,
) -> Result<SegSample, SegError> {
    check(volume, mask)?;
    let start = crop_start_for(volume.shape, TRAIN_CROP, centre_irc)?;
    let [planes, rows, cols] = TRAIN_CROP;
    let mut hu = Vec::with_capacity(planes * rows * cols);
    for i in start[0]..start[0] + planes {
        for r in start[1]..start[1] + rows {
            let from = volume.index([i, r, start[2]]);
            hu.extend_from_slice(&volume.voxels[from..from + cols]);
        }
    }
    clip_hu(&mut hu);
    let mask_slice = start[0] + CONTEXT_SLICES;
    let mut plane = Vec::with_capacity(rows * cols);
    for r in start[1]..start[1] + rows {
        let from = volume.index([mask_slice, r, start[2]]);
        plane.extend_from_slice(&mask[from..from + cols]);
    }
    Ok(SegSample {
        hu,
        mask: plane,
        rows,
        cols,
        start,
        mask_slice,
    })
}

/// The volume slice plane `k` (0..[`HU_PLANES`]) of slice `index`'s
/// input shows: `index − 3 + k` clamped to `0..slices` (the book's
/// `getitem_fullSlice`). `slices` must be at least 1.
pub fn context_slice(index: usize, k: usize, slices: usize) -> usize {
    (index + k).saturating_sub(CONTEXT_SLICES).min(slices - 1)
}

/// Slice `index` with 3 slices of context on each side, each clamped to
/// the volume as the book's `getitem_fullSlice` does (so slice 0's first
/// four planes are all slice 0), and slice `index`'s mask.
pub fn slice_with_context(
    volume: &Volume,
    mask: &[bool],
    index: usize,
) -> Result<SegSample, SegError> {
    check(volume, mask)?;
    let [slices, rows, cols] = volume.shape;
    if slices == 0 {
        return Err(SegError::NoSlices {
            shape: volume.shape,
        });
    }
    if index >= slices {
        return Err(SegError::SliceOutside { index, slices });
    }
    let plane = rows * cols;
    let mut hu = Vec::with_capacity(HU_PLANES * plane);
    for k in 0..HU_PLANES {
        let context = context_slice(index, k, slices);
        hu.extend_from_slice(&volume.voxels[context * plane..(context + 1) * plane]);
    }
    clip_hu(&mut hu);
    Ok(SegSample {
        hu,
        mask: mask[index * plane..(index + 1) * plane].to_vec(),
        rows,
        cols,
        start: [index.saturating_sub(CONTEXT_SLICES), 0, 0],
        mask_slice: index,
    })
}

/// A cached chunk of `crop_shape` (a seg cache's manifest `crop_shape`,
/// `[8, rows, cols]`) as (the 7 HU planes, the mask plane of 0/1).
pub fn split_chunk(chunk: &[i16], crop_shape: [usize; 3]) -> Result<(&[i16], &[i16]), SegError> {
    let plane = crop_shape[1] * crop_shape[2];
    if crop_shape[0] != CHUNK_PLANES || chunk.len() != CHUNK_PLANES * plane {
        return Err(SegError::ChunkSize {
            planes: CHUNK_PLANES,
            plane,
            got: chunk.len(),
        });
    }
    Ok(chunk.split_at(HU_PLANES * plane))
}
