//! Data layer of the LUNA16 toolkit.
//!
//! Everything between files on disk and the training loop: the MetaImage
//! reader ([`metaimage`]), the LUNA candidate list ([`luna`]), world↔voxel
//! geometry ([`geometry`]), crops ([`crop`]), a synthetic LUNA-like dataset
//! ([`synth`]) and the on-disk candidate cache ([`cache`]) that `prepcache`
//! writes and `train` memory-maps, plus crash-safe file writing
//! ([`durable`]) for every tool.

pub mod cache;
pub mod crop;
pub mod durable;
pub mod geometry;
pub mod luna;
pub mod metaimage;
pub mod synth;
pub mod volume;
