//! Writing a segmentation cache: `seg-train/` and `seg-val/` under one
//! output folder, each an ordinary candidate cache written with the cache's
//! own pieces (shards, `index.bin`, the manifest last), so checksums,
//! `verify` and `scripts/lunacache.py` apply unchanged.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cache::codec::ChunkEncoder;
use crate::cache::format::{Codec, Entry, Manifest, ShardInfo, Skipped};
use crate::cache::writer::{
    begin_update, finalize, CacheContents, CandidateMeta, ShardWriter, StoredFrame,
};
use crate::cache::CacheError;
use crate::geometry::{Irc, Xyz};
use crate::luna::{canonical_order, validation_series, LunaError, OrderKey};
use crate::nodule_mask::{annotation_mask, HuGrid, BOOK_THRESHOLD_HU};
use crate::volume::Volume;

use super::sample::{slice_with_context, training_sample, SegError};
use super::{CHUNK_PLANES, LAYOUT_TAG, TRAIN_CHUNK_SHAPE};

/// Sub-cache of the training crops.
pub const TRAIN_DIR: &str = "seg-train";
/// Sub-cache of the validation slices.
pub const VAL_DIR: &str = "seg-val";
/// `seg-val`'s chunk shape when no validation series was written (LUNA's).
pub const EMPTY_VAL_SHAPE: [usize; 3] = [CHUNK_PLANES, 512, 512];

/// A positive candidate of a scan (`is_nodule` in the merged list).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Positive {
    pub center_xyz: Xyz,
    pub diameter_mm: f64,
}

/// One scan and its positive candidates.
#[derive(Debug, Clone)]
pub struct SegSeries {
    pub uid: String,
    pub volume: Volume,
    pub positives: Vec<Positive>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegCacheError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("splitting the series: {0}")]
    Split(#[from] LunaError),
    #[error("series {uid} is not among the {known} series the split was made over")]
    UnknownSeries { uid: String, known: usize },
    #[error("series {uid} was given twice")]
    DuplicateSeries { uid: String },
    #[error("series {uid}: {source}")]
    Sample { uid: String, source: SegError },
}

/// The manifests of the two sub-caches written.
#[derive(Debug, Clone)]
pub struct SegCacheManifests {
    pub train: Manifest,
    pub val: Manifest,
}

/// How a sub-cache orders its entries.
#[derive(Clone, Copy)]
enum Order {
    /// The book's `pos_list`: the canonical candidate order.
    Canonical,
    /// The book's `sample_list`: series by uid, then slice.
    SeriesSlice,
}

/// One sub-cache being written: a shard per series, finished as soon as
/// the series is, so a full LUNA build holds one open file at a time.
struct SubCache {
    dir: PathBuf,
    codec: Codec,
    crop_shape: Option<[usize; 3]>,
    encoder: Option<ChunkEncoder>,
    series: Vec<String>,
    shards: Vec<ShardInfo>,
    rows: Vec<(u32, CandidateMeta, StoredFrame)>,
    skipped: Vec<Skipped>,
}

type Chunk = (CandidateMeta, Vec<i16>);

impl SubCache {
    fn create(dir: PathBuf, codec: Codec) -> Result<Self, CacheError> {
        begin_update(&dir)?;
        Ok(SubCache {
            dir,
            codec,
            crop_shape: None,
            encoder: None,
            series: Vec::new(),
            shards: Vec::new(),
            rows: Vec::new(),
            skipped: Vec::new(),
        })
    }

    /// Fix the chunk shape (first call) or say whether `shape` is it.
    fn accepts(&mut self, shape: [usize; 3]) -> Result<bool, CacheError> {
        if let Some(fixed) = self.crop_shape {
            return Ok(fixed == shape);
        }
        let encoder = ChunkEncoder::new(self.codec, shape.iter().product()).map_err(|e| {
            CacheError::Invalid {
                path: self.dir.clone(),
                reason: e.to_string(),
            }
        })?;
        self.crop_shape = Some(shape);
        self.encoder = Some(encoder);
        Ok(true)
    }

    /// Write one series' chunks into its shard (none: no shard).
    fn write_series(
        &mut self,
        uid: &str,
        chunks: impl Iterator<Item = Result<Chunk, SegCacheError>>,
    ) -> Result<(), SegCacheError> {
        let series = self.series.len() as u32;
        let mut writer: Option<ShardWriter> = None;
        for chunk in chunks {
            let (meta, voxels) = chunk?;
            let shard = match &mut writer {
                Some(w) => w,
                None => writer.insert(ShardWriter::create(&self.dir, uid)?),
            };
            let encoder = self.encoder.as_mut().expect("accepts() ran first");
            let frame = encoder.encode(&voxels).map_err(|e| CacheError::Invalid {
                path: shard.path().to_owned(),
                reason: e.to_string(),
            })?;
            let stored = shard.append(frame)?;
            self.rows.push((series, meta, stored));
        }
        if let Some(w) = writer {
            let finished = w.finish_named()?;
            self.shards.push(ShardInfo {
                path: finished.path,
                bytes: finished.bytes,
            });
            self.series.push(uid.to_owned());
        }
        Ok(())
    }

    fn finish(mut self, tool: &str, order: Order) -> Result<Manifest, CacheError> {
        let series = &self.series;
        match order {
            Order::Canonical => self.rows.sort_by(|a, b| {
                let key = |(s, m, _): &(u32, CandidateMeta, StoredFrame)| OrderKey {
                    is_nodule: m.is_nodule,
                    diameter_mm: m.diameter_mm,
                    series_uid: &series[*s as usize],
                    center_xyz: m.center_xyz,
                };
                canonical_order(&key(a), &key(b))
            }),
            Order::SeriesSlice => self.rows.sort_by(|a, b| {
                (&series[a.0 as usize], a.1.center_irc[0])
                    .cmp(&(&series[b.0 as usize], b.1.center_irc[0]))
            }),
        }
        let entries = self.rows.iter().map(|&(s, m, f)| Entry {
            series: s,
            center_xyz: m.center_xyz,
            center_irc: m.center_irc,
            is_nodule: m.is_nodule,
            diameter_mm: m.diameter_mm,
            // One shard per series, pushed together.
            shard: s,
            offset: f.offset,
            length: f.length,
            crc32: f.crc32,
        });
        let contents = CacheContents {
            tool: format!("{tool}; {LAYOUT_TAG}"),
            codec: self.codec,
            crop_shape: self.crop_shape.unwrap_or(EMPTY_VAL_SHAPE),
            series: self.series.clone(),
            shards: self.shards,
            entries: entries.collect(),
            skipped: self.skipped,
            missing_series: 0,
            missing_candidates: 0,
            inputs_fingerprint: String::new(),
        };
        finalize(&self.dir, contents)
    }
}

/// The scan's nodule mask over the positives whose centre lies inside it,
/// those positives with their centre voxel, and the ones left out. The
/// book would assert (or mark unrelated voxels) on a centre outside; one
/// bad row should not cost the scan's other nodules, so it is left out and
/// recorded instead.
fn series_mask(series: &SegSeries) -> (Vec<bool>, Vec<(Positive, Irc)>, Vec<Skipped>) {
    let volume = &series.volume;
    let (mut inside, mut skipped) = (Vec::new(), Vec::new());
    for p in &series.positives {
        let reason = match volume.geometry.xyz_to_irc(p.center_xyz) {
            Ok(irc) if (0..3).all(|a| (0..volume.shape[a] as i64).contains(&irc[a])) => {
                inside.push((*p, irc));
                continue;
            }
            Ok(irc) => format!(
                "centre {irc:?} (i, r, c) outside the volume {:?}",
                volume.shape
            ),
            Err(e) => e.to_string(),
        };
        skipped.push(Skipped {
            series_uid: series.uid.clone(),
            center_xyz: Some(p.center_xyz),
            reason,
        });
    }
    let centres: Vec<Irc> = inside.iter().map(|&(_, irc)| irc).collect();
    // Volume::new guarantees voxels match the shape, and every centre was
    // checked above, so neither step can fail.
    let grid = HuGrid::new(&volume.voxels, volume.shape).expect("Volume is consistent");
    let mask = annotation_mask(&grid, &centres, BOOK_THRESHOLD_HU).expect("centres are inside");
    (mask, inside, skipped)
}

/// Writes `seg-train/` and `seg-val/` under one folder, a series at a time.
pub struct SegCacheWriter {
    known: HashSet<String>,
    validation: HashSet<String>,
    seen: HashSet<String>,
    train: SubCache,
    val: SubCache,
}

impl SegCacheWriter {
    /// Start both sub-caches under `out_dir`. `all_series` are every series
    /// of the data set (the book's `sorted(getCandidateInfoDict())`), which
    /// the split by series ([`validation_series`]) is made over.
    pub fn create<S: AsRef<str>>(
        out_dir: &Path,
        all_series: &[S],
        val_stride: usize,
        codec: Codec,
    ) -> Result<Self, SegCacheError> {
        let is_val = validation_series(all_series, val_stride)?;
        let uid = |s: &S| s.as_ref().to_owned();
        let validation = all_series.iter().zip(&is_val).filter(|(_, &v)| v);
        let mut train = SubCache::create(out_dir.join(TRAIN_DIR), codec)?;
        train.accepts(TRAIN_CHUNK_SHAPE)?;
        Ok(SegCacheWriter {
            known: all_series.iter().map(uid).collect(),
            validation: validation.map(|(s, _)| uid(s)).collect(),
            seen: HashSet::new(),
            train,
            val: SubCache::create(out_dir.join(VAL_DIR), codec)?,
        })
    }

    pub fn is_validation(&self, uid: &str) -> bool {
        self.validation.contains(uid)
    }

    /// Record a series that could not be read, in its split's sub-cache.
    pub fn skip_series(&mut self, uid: &str, reason: String) {
        let cache = if self.is_validation(uid) {
            &mut self.val
        } else {
            &mut self.train
        };
        cache.skipped.push(Skipped {
            series_uid: uid.to_owned(),
            center_xyz: None,
            reason,
        });
    }

    /// Write a series: its positives' crops to `seg-train/`, or every slice
    /// to `seg-val/`, as its split says.
    pub fn add(&mut self, series: &SegSeries) -> Result<(), SegCacheError> {
        let uid = &series.uid;
        if !self.known.contains(uid) {
            return Err(SegCacheError::UnknownSeries {
                uid: uid.clone(),
                known: self.known.len(),
            });
        }
        if !self.seen.insert(uid.clone()) {
            return Err(SegCacheError::DuplicateSeries { uid: uid.clone() });
        }
        let (mask, inside, skipped) = series_mask(series);
        if self.is_validation(uid) {
            self.val.skipped.extend(skipped);
            self.add_val(series, &mask)
        } else {
            self.train.skipped.extend(skipped);
            self.add_train(series, &mask, &inside)
        }
    }

    fn add_train(
        &mut self,
        series: &SegSeries,
        mask: &[bool],
        inside: &[(Positive, Irc)],
    ) -> Result<(), SegCacheError> {
        let mut chunks = Vec::with_capacity(inside.len());
        for &(p, irc) in inside {
            match training_sample(&series.volume, mask, irc) {
                Ok(sample) => chunks.push(Ok((
                    CandidateMeta {
                        center_xyz: p.center_xyz,
                        center_irc: irc.map(|v| v as i32),
                        is_nodule: true,
                        diameter_mm: p.diameter_mm,
                    },
                    sample.to_chunk(),
                ))),
                // Too small a scan for the crop: this positive only.
                Err(e) => self.train.skipped.push(Skipped {
                    series_uid: series.uid.clone(),
                    center_xyz: Some(p.center_xyz),
                    reason: e.to_string(),
                }),
            }
        }
        self.train.write_series(&series.uid, chunks.into_iter())
    }

    fn add_val(&mut self, series: &SegSeries, mask: &[bool]) -> Result<(), SegCacheError> {
        let volume = &series.volume;
        let [slices, rows, cols] = volume.shape;
        if slices == 0 || !self.val.accepts([CHUNK_PLANES, rows, cols])? {
            let shape = self.val.crop_shape.unwrap_or(EMPTY_VAL_SHAPE);
            self.skip_series(
                &series.uid,
                format!(
                    "volume of shape {:?}: no slices, or slices not {} × {} as the cache's",
                    volume.shape, shape[1], shape[2]
                ),
            );
            return Ok(());
        }
        let centre = [rows / 2, cols / 2];
        let chunks = (0..slices).map(|i| {
            let sample =
                slice_with_context(volume, mask, i).map_err(|source| SegCacheError::Sample {
                    uid: series.uid.clone(),
                    source,
                })?;
            let irc = [i, centre[0], centre[1]];
            let meta = CandidateMeta {
                center_xyz: volume.geometry.irc_to_xyz(irc.map(|v| v as f64)),
                center_irc: irc.map(|v| v as i32),
                is_nodule: sample.mask.iter().any(|&m| m),
                diameter_mm: 0.0,
            };
            Ok((meta, sample.to_chunk()))
        });
        self.val.write_series(&series.uid, chunks)
    }

    /// Write both indexes and manifests (each sub-cache's manifest last).
    pub fn finish(self, tool: &str) -> Result<SegCacheManifests, SegCacheError> {
        Ok(SegCacheManifests {
            train: self.train.finish(tool, Order::Canonical)?,
            val: self.val.finish(tool, Order::SeriesSlice)?,
        })
    }
}

/// [`SegCacheWriter`] over `series` in one call.
pub fn write_seg_cache<S: AsRef<str>>(
    out_dir: &Path,
    all_series: &[S],
    val_stride: usize,
    codec: Codec,
    tool: &str,
    series: impl IntoIterator<Item = SegSeries>,
) -> Result<SegCacheManifests, SegCacheError> {
    let mut writer = SegCacheWriter::create(out_dir, all_series, val_stride, codec)?;
    for s in series {
        writer.add(&s)?;
    }
    writer.finish(tool)
}
