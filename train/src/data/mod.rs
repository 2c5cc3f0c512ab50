//! From the cache to batches on the device: which samples an epoch visits
//! ([`split`], [`sampler`]), how they are decoded and moved ([`loader`]),
//! how training batches are augmented ([`augment`]), and chapter 14's
//! malignancy labels ([`malignancy`]).

pub mod augment;
pub mod balance;
pub mod cache;
pub mod loader;
pub mod malignancy;
pub mod mixup;
pub mod sampler;
pub mod split;
