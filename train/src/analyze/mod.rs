//! Chapter 14's first stage: from a CT volume and a trained U-Net to a list
//! of nodule candidates, as the book's `p2ch14/nodule_analysis.py` does it.
//!
//! - [`segment`]: the U-Net over every slice of the scan (`segmentCt`):
//!   P(nodule) per voxel, or the mask `P > 0.5`.
//! - [`components`]: that mask eroded once, cut into connected components,
//!   and each component's HU-weighted centre of mass in voxel and world
//!   coordinates (`segmentCt`'s erosion and `groupSegmentationOutput`),
//!   scipy.ndimage's steps with its defaults ([`runs`]: the labelling and
//!   centres of mass over runs of set voxels).
//!
//! - [`classify`]: each candidate's crop through the nodule (and the
//!   malignancy) classifier.
//! - [`scan`]: the three stages over one scan; [`inputs`], [`matching`],
//!   [`picture`], [`report`] and [`models`] are what `train analyze` reads,
//!   scores and writes around it.

pub mod classify;
pub mod components;
pub mod inputs;
pub mod matching;
pub mod models;
pub mod picture;
pub mod report;
pub mod runs;
pub mod scan;
pub mod segment;
pub mod thickest;

pub use components::{candidates_from_mask, Candidate, Centre, CentreRule, ComponentsError};
pub use segment::{
    segment_probabilities, segment_scan, segment_scan_with, SegmentError, SegmentOptions,
    MASK_THRESHOLD,
};
