//! Chapter 13's segmentation data: 7-slice HU inputs and nodule masks, cut
//! from a scan ([`sample`]) and cached ([`writer`]) as two ordinary
//! candidate caches ([`crate::cache`]) under one folder.
//!
//! # Samples (the book's `p2ch13/dsets.py`)
//!
//! - Training ([`training_sample`]): per positive candidate, the
//!   (7, 96, 96) crop `getCtRawCandidate(uid, center_xyz, (7, 96, 96))`
//!   takes, shifted inside the scan as the classifier's crops are
//!   ([`crate::crop::crop_start_for`]), HU clipped to [−1000, 1000], and
//!   the mask of the crop's centre slice (`pos_a[3:4]`). The book's random
//!   64×64 window inside it is the trainer's augmentation, not cached.
//! - Validation ([`slice_with_context`]): per slice `i` of a validation
//!   scan, slices `i − 3 ..= i + 3` each clamped to the scan
//!   (`getitem_fullSlice`), clipped, and slice `i`'s mask.
//!
//! Masks are [`crate::nodule_mask::annotation_mask`] over the scan's
//! positives at the book's −700 HU.
//!
//! # Cache layout
//!
//! ```text
//! OUT/
//!   seg-train/   crop_shape [8, 96, 96]: one entry per positive candidate of a training series
//!   seg-val/     crop_shape [8, H, W]:   one entry per slice of a validation series
//! ```
//!
//! Each is a complete cache in the format of [`crate::cache::format`]
//! (readable by [`crate::cache::CacheReader`] and `scripts/lunacache.py`).
//! A chunk's planes: 0–6 the HU slices `i − 3 ..= i + 3` (int16,
//! clipped), plane 7 the mask of slice `i` as 0/1; [`split_chunk`] cuts
//! it. The manifest format has no free field for this (adding one would
//! change `Manifest` and, to be refused by old readers, `FORMAT_VERSION`),
//! so the layout is stated here and tagged in the manifest's `tool`
//! ([`LAYOUT_TAG`]), which readers ignore.
//!
//! Entries:
//! - `seg-train`: `center_xyz`/`diameter_mm` of the candidate,
//!   `center_irc` its centre voxel before shifting, `is_nodule` true; in
//!   canonical order, i.e. the book's `pos_list` for the training series.
//! - `seg-val`: `center_irc` = [slice, H/2, W/2], `center_xyz` that
//!   voxel's world position, `is_nodule` = the mask has a positive pixel,
//!   `diameter_mm` 0; ordered by series uid, then slice (the book's
//!   `sample_list` with `fullCt_bool`; its entries with `is_nodule` are
//!   the book's `positive_indexes` samples).
//!
//! The split is by series ([`crate::luna::validation_series`]): every
//! `val_stride`-th series by uid is validation, the rest training. A
//! validation series whose slices are not H × W of the first one written
//! is skipped and named in `seg-val`'s `skipped` (LUNA16 is all
//! 512 × 512); so are positives whose centre lies outside their scan or
//! whose scan is smaller than the crop, and training series with no
//! positive ([`NO_POSITIVE_REASON`]: no crops, as in the book). What one
//! series contributes is [`series::SeriesSamples`], shared by
//! [`SegCacheWriter`] and `prepcache seg`'s resumable per-series shards.
//!
//! # Size for full LUNA16
//!
//! Arithmetic, not measured on LUNA16. Chunks are `8 × rows × cols` int16.
//!
//! - `seg-train`: ~1,200 positive rows in the merged list, ~90% of them in
//!   training series (every 10th series is validation): ~1,080 chunks of
//!   8 × 96 × 96 × 2 B = 147,456 B, so ~159 MB raw (177 MB if all 1,200).
//! - `seg-val`: ~890 / 10 = 89 series × ~250 slices = ~22,250 chunks of
//!   8 × 512 × 512 × 2 B = 4 MiB, so ~93 GB (87 GiB) raw: every slice is
//!   stored eight times over (seven context planes and the mask), ~8× the
//!   validation scans themselves (~11.7 GB).
//!
//! Compressed with the default codec (zstd −1, byte shuffle), the
//! synthetic scans of `shared/tests/seg/cache.rs` (air at −850 HU and
//! tissue at 40 HU, each ±30 HU uniform noise) stored at 2.27× (training
//! crops) and 2.65× (full slices) smaller: ~70 MB and ~35 GB. Real slices,
//! with clipped air around the body, should do better; that is not
//! measured. If 35 GB is too much, keep only the `is_nodule` slices (the
//! book's validation set, a few per positive: ~0.6k chunks, ~2.5 GB raw)
//! or cache each slice once and assemble context when reading; both are
//! the `train seg` side's call.
pub mod sample;
pub mod series;
pub mod writer;

pub use sample::{
    context_slice, slice_with_context, split_chunk, training_sample, SegError, SegSample,
};
pub use series::{order_entries, Role, SeriesItem, SeriesSamples, NO_POSITIVE_REASON};
pub use writer::{
    val_shape_reason, write_seg_cache, Positive, SegCacheError, SegCacheManifests, SegCacheWriter,
    SegSeries, EMPTY_VAL_SHAPE, TRAIN_DIR, VAL_DIR,
};

/// Context slices on each side of the centre slice.
pub const CONTEXT_SLICES: usize = 3;
/// HU planes in a sample: the centre slice and its context.
pub const HU_PLANES: usize = 2 * CONTEXT_SLICES + 1;
/// Planes in a cached chunk: the HU planes, then the mask.
pub const CHUNK_PLANES: usize = HU_PLANES + 1;
/// Index of the mask plane in a chunk.
pub const MASK_PLANE: usize = HU_PLANES;
/// The book's training crop (i, r, c).
pub const TRAIN_CROP: [usize; 3] = [HU_PLANES, 96, 96];
/// `seg-train`'s chunk shape.
pub const TRAIN_CHUNK_SHAPE: [usize; 3] = [CHUNK_PLANES, 96, 96];
/// Appended to the manifests' `tool`: names the chunk layout above.
pub const LAYOUT_TAG: &str = "seg-chunk-v1: planes 0-6 HU slices i-3..=i+3, plane 7 mask 0/1";
