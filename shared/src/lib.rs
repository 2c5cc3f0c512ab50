//! Data layer of the LUNA16 toolkit.
//!
//! Everything between files on disk and the training loop that is LUNA
//! specific: the candidate list and its canonical order and split
//! ([`luna`]), crops ([`crop`]) in LUNA's HU window ([`hu`]) and the
//! on-disk candidate cache ([`cache`])
//! that `prepcache` writes and `train` memory-maps, chapter 13's nodule
//! masks ([`nodule_mask`]) and its segmentation samples and cache
//! ([`seg`]), plus crash-safe file
//! writing ([`durable`]) and one-writer folder locks ([`lock`]) for every
//! tool. Reading the scans themselves is the [`metaimage`] and
//! [`dicom_series`] crates' job, behind one [`scan_source::ScanSource`];
//! metaimage is re-exported here with its [`geometry`] and [`volume`]
//! modules so the tools need one data dependency.

pub mod cache;
pub mod crop;
pub mod csv_write;
pub mod ct_geometry;
pub mod durable;
pub mod hu;
pub mod lock;
pub mod luna;
pub mod nodule_mask;
pub mod scan_source;
pub mod seg;
pub mod signals;

pub use dicom_series;
pub use metaimage::{self, geometry, volume};
