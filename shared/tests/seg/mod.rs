//! Chapter 13's segmentation samples and cache.

mod cache;
mod sample;
