//! LUNA's Hounsfield-unit window: the range every crop is clipped to before
//! it is cached, recorded as the cache manifest's `clip_hu`.
//!
//! The nodule classifiers this toolkit reproduces work in [-1000, 1000]:
//! below it lie only air and the scanner's out-of-view padding (-2000,
//! -3024), above it dense bone, metal and contrast, none of which set a
//! nodule apart. The `metaimage` crate reads scans as stored; this is the
//! one place the window is decided.

/// Lowest HU a crop holds: air.
pub const HU_MIN: i16 = -1000;
/// Highest HU a crop holds (see the module docs for why).
pub const HU_MAX: i16 = 1000;

/// Clip in place to `[HU_MIN, HU_MAX]`.
pub fn clip_hu(values: &mut [i16]) {
    for v in values {
        *v = (*v).clamp(HU_MIN, HU_MAX);
    }
}
