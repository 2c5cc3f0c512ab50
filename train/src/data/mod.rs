//! From the cache to batches on the device: which samples an epoch visits
//! ([`split`], [`sampler`]), how they are decoded and moved ([`loader`]),
//! and how training batches are augmented ([`augment`]).

pub mod augment;
pub mod balance;
pub mod cache;
pub mod loader;
pub mod mixup;
pub mod sampler;
pub mod split;
