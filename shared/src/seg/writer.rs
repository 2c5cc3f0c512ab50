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
use crate::geometry::Xyz;
use crate::luna::{validation_series, LunaError};
use crate::volume::Volume;

use super::sample::SegError;
use super::series::{order_entries, Role, SeriesItem, SeriesSamples, NO_POSITIVE_REASON};
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

    /// Write one series' items: chunks into its shard (none: no shard),
    /// left-out positives into `skipped`.
    fn write_series(
        &mut self,
        uid: &str,
        items: impl Iterator<Item = Result<SeriesItem, SegCacheError>>,
    ) -> Result<(), SegCacheError> {
        let series = self.series.len() as u32;
        let mut writer: Option<ShardWriter> = None;
        for item in items {
            let (meta, voxels) = match item? {
                SeriesItem::Chunk { meta, voxels } => (meta, voxels),
                SeriesItem::Skipped { positive, reason } => {
                    self.skipped
                        .push(SeriesItem::skipped(uid, &positive, &reason));
                    continue;
                }
            };
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

    fn finish(self, tool: &str, role: Role) -> Result<Manifest, CacheError> {
        let mut entries: Vec<Entry> = self
            .rows
            .iter()
            .map(|&(s, m, f)| Entry {
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
            })
            .collect();
        order_entries(role, &self.series, &mut entries);
        let contents = CacheContents {
            tool: format!("{tool}; {LAYOUT_TAG}"),
            codec: self.codec,
            crop_shape: self.crop_shape.unwrap_or(EMPTY_VAL_SHAPE),
            series: self.series.clone(),
            shards: self.shards,
            entries,
            skipped: self.skipped,
            missing_series: 0,
            missing_candidates: 0,
            inputs_fingerprint: String::new(),
        };
        finalize(&self.dir, contents)
    }
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
        if !self.is_validation(uid) {
            if series.positives.is_empty() {
                self.skip_series(uid, NO_POSITIVE_REASON.to_owned());
                return Ok(());
            }
            let samples = SeriesSamples::new(series, Role::Train);
            return self.train.write_series(uid, samples.items());
        }
        let [slices, rows, cols] = series.volume.shape;
        if slices == 0 || !self.val.accepts([CHUNK_PLANES, rows, cols])? {
            let shape = self.val.crop_shape.unwrap_or(EMPTY_VAL_SHAPE);
            self.skip_series(uid, val_shape_reason(series.volume.shape, shape));
            return Ok(());
        }
        let samples = SeriesSamples::new(series, Role::Val);
        self.val.write_series(uid, samples.items())
    }

    /// Write both indexes and manifests (each sub-cache's manifest last).
    pub fn finish(self, tool: &str) -> Result<SegCacheManifests, SegCacheError> {
        Ok(SegCacheManifests {
            train: self.train.finish(tool, Role::Train)?,
            val: self.val.finish(tool, Role::Val)?,
        })
    }
}

/// Why a validation series of `shape` is not in a `seg-val` of chunks
/// `cache_shape`: all its chunks must share one shape.
pub fn val_shape_reason(shape: [usize; 3], cache_shape: [usize; 3]) -> String {
    format!(
        "volume of shape {shape:?}: no slices, or slices not {} × {} as the cache's",
        cache_shape[1], cache_shape[2]
    )
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
