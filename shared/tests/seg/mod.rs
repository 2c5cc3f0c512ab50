//! Chapter 13's segmentation samples and cache.


mod sample;
