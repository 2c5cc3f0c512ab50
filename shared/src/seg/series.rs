//! What one series puts into its sub-cache, one item at a time: the
//! chunks of a training series' positives or of a validation series'
//! slices, and the positives left out. Both writers go through here —
//! [`super::SegCacheWriter`] (one pass, in memory order) and `prepcache
//! seg` (a resumable shard per series) — so they cannot disagree on a
//! byte. Items are produced lazily: a LUNA validation series is ~1 GB of
//! chunks, and only one is held at a time.

use std::cmp::Ordering;

use crate::cache::format::{Entry, Skipped};
use crate::cache::writer::CandidateMeta;
use crate::geometry::Irc;
use crate::luna::{canonical_order, OrderKey};
use crate::nodule_mask::{annotation_mask, HuGrid, BOOK_THRESHOLD_HU};

use super::sample::{slice_with_context, training_sample};
use super::writer::{Positive, SegCacheError, SegSeries};
use super::{CHUNK_PLANES, TRAIN_CHUNK_SHAPE};

/// Which sub-cache a series goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `seg-train`: a crop per positive.
    Train,
    /// `seg-val`: every slice.
    Val,
}

/// Why a training series has no entry: the book's `pos_list` simply has
/// no crop from it. Recorded in `seg-train`'s `skipped` so it is said.
pub const NO_POSITIVE_REASON: &str =
    "training series with no positive candidate: no training crop (the book has none from it)";

/// One thing a series contributes, in order.
#[derive(Debug)]
pub enum SeriesItem {
    /// A chunk of the sub-cache's shape and what the index says of it.
    Chunk {
        meta: CandidateMeta,
        voxels: Vec<i16>,
    },
    /// A positive left out: its centre is outside the scan, or (training)
    /// the scan is smaller than the crop.
    Skipped { positive: Positive, reason: String },
}

impl SeriesItem {
    /// The manifest's record of a left-out positive of `uid`.
    pub fn skipped(uid: &str, positive: &Positive, reason: &str) -> Skipped {
        Skipped {
            series_uid: uid.to_owned(),
            center_xyz: Some(positive.center_xyz),
            reason: reason.to_owned(),
        }
    }
}

/// A series' samples: its nodule mask, computed once, and each positive's
/// centre voxel (or why it has none).
pub struct SeriesSamples<'a> {
    series: &'a SegSeries,
    role: Role,
    mask: Vec<bool>,
    centres: Vec<Result<Irc, String>>,
}

impl<'a> SeriesSamples<'a> {
    /// The mask over the positives whose centre lies inside the scan. The
    /// book would assert (or mark unrelated voxels) on a centre outside;
    /// one bad row should not cost the scan's other nodules, so it is left
    /// out and reported instead.
    pub fn new(series: &'a SegSeries, role: Role) -> Self {
        let volume = &series.volume;
        let centres: Vec<Result<Irc, String>> = series
            .positives
            .iter()
            .map(|p| match volume.geometry.xyz_to_irc(p.center_xyz) {
                Ok(irc) if (0..3).all(|a| (0..volume.shape[a] as i64).contains(&irc[a])) => Ok(irc),
                Ok(irc) => Err(format!(
                    "centre {irc:?} (i, r, c) outside the volume {:?}",
                    volume.shape
                )),
                Err(e) => Err(e.to_string()),
            })
            .collect();
        let inside: Vec<Irc> = centres.iter().filter_map(|c| c.clone().ok()).collect();
        // Volume::new guarantees voxels match the shape, and every centre was
        // checked above, so neither step can fail.
        let grid = HuGrid::new(&volume.voxels, volume.shape).expect("Volume is consistent");
        let mask = annotation_mask(&grid, &inside, BOOK_THRESHOLD_HU).expect("centres are inside");
        SeriesSamples {
            series,
            role,
            mask,
            centres,
        }
    }

    /// The shape of this series' chunks: the training crop, or `[8, H, W]`.
    pub fn chunk_shape(&self) -> [usize; 3] {
        match self.role {
            Role::Train => TRAIN_CHUNK_SHAPE,
            Role::Val => {
                let [_, rows, cols] = self.series.volume.shape;
                [CHUNK_PLANES, rows, cols]
            }
        }
    }

    /// Training: one item per positive, in the given order. Validation:
    /// the positives left out, then a chunk per slice.
    pub fn items(&self) -> Box<dyn Iterator<Item = Result<SeriesItem, SegCacheError>> + '_> {
        let positives = self.series.positives.iter().zip(&self.centres);
        match self.role {
            Role::Train => Box::new(positives.map(|(p, c)| Ok(self.train_item(p, c)))),
            Role::Val => {
                let outside = positives.filter_map(|(p, c)| {
                    let reason = c.as_ref().err()?;
                    Some(Ok(SeriesItem::Skipped {
                        positive: *p,
                        reason: reason.clone(),
                    }))
                });
                Box::new(outside.chain((0..self.series.volume.shape[0]).map(|i| self.val_item(i))))
            }
        }
    }

    fn train_item(&self, p: &Positive, centre: &Result<Irc, String>) -> SeriesItem {
        let skipped = |reason: String| SeriesItem::Skipped {
            positive: *p,
            reason,
        };
        let irc = match centre {
            Ok(irc) => *irc,
            Err(reason) => return skipped(reason.clone()),
        };
        match training_sample(&self.series.volume, &self.mask, irc) {
            Ok(sample) => SeriesItem::Chunk {
                meta: CandidateMeta {
                    center_xyz: p.center_xyz,
                    center_irc: irc.map(|v| v as i32),
                    is_nodule: true,
                    diameter_mm: p.diameter_mm,
                },
                voxels: sample.to_chunk(),
            },
            // Too small a scan for the crop: this positive only.
            Err(e) => skipped(e.to_string()),
        }
    }

    fn val_item(&self, i: usize) -> Result<SeriesItem, SegCacheError> {
        let volume = &self.series.volume;
        let sample =
            slice_with_context(volume, &self.mask, i).map_err(|source| SegCacheError::Sample {
                uid: self.series.uid.clone(),
                source,
            })?;
        let irc = [i, volume.shape[1] / 2, volume.shape[2] / 2];
        Ok(SeriesItem::Chunk {
            meta: CandidateMeta {
                center_xyz: volume.geometry.irc_to_xyz(irc.map(|v| v as f64)),
                center_irc: irc.map(|v| v as i32),
                is_nodule: sample.mask.iter().any(|&m| m),
                diameter_mm: 0.0,
            },
            voxels: sample.to_chunk(),
        })
    }
}

/// Put a sub-cache's entries in its order: `seg-train` in the canonical
/// candidate order (the book's `pos_list`), `seg-val` by series uid, then
/// slice (the book's `sample_list`). `series` is the index's series table.
pub fn order_entries(role: Role, series: &[String], entries: &mut [Entry]) {
    let uid = |e: &Entry| series[e.series as usize].as_str();
    match role {
        Role::Train => entries.sort_by(|a, b| {
            let key = |e: &Entry| OrderKey {
                is_nodule: e.is_nodule,
                diameter_mm: e.diameter_mm,
                series_uid: uid(e),
                center_xyz: e.center_xyz,
            };
            canonical_order(&key(a), &key(b))
        }),
        Role::Val => entries.sort_by(|a, b| -> Ordering {
            (uid(a), a.center_irc[0]).cmp(&(uid(b), b.center_irc[0]))
        }),
    }
}
