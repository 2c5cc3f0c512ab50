//! What a reader checks in a parsed `manifest.json` before it trusts it:
//! sizes within what any real cache has (so nothing absurd is allocated
//! from them) and the `header_checksum` over the fields that say how the
//! bytes decode (so an edited field is refused, not obeyed).

use std::path::Path;

use super::error::CacheError;
use super::format::{Manifest, DTYPE, ENTRY_RECORD_BYTES, MAX_CHUNK_VOXELS, MAX_CROP_EDGE};

/// `path` is the manifest's, for the error.
pub fn check_manifest(m: &Manifest, path: &Path) -> Result<(), CacheError> {
    let corrupt = |reason: String| CacheError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    check_limits(m).map_err(corrupt)?;
    if let Some(stored) = &m.header_checksum {
        let computed = m.computed_header_checksum();
        if *stored != computed {
            return Err(corrupt(format!(
                "header_checksum is {stored}, the fields it covers give {computed}: \
                 crop_shape, dtype, clip_hu, codec, a count or the fingerprint was edited; \
                 rebuild the cache with `prepcache build`"
            )));
        }
    }
    Ok(())
}

fn check_limits(m: &Manifest) -> Result<(), String> {
    if m.dtype != DTYPE {
        return Err(format!("dtype {:?}: only {DTYPE:?} is supported", m.dtype));
    }
    if m.crop_shape.iter().any(|&v| v == 0 || v > MAX_CROP_EDGE) {
        return Err(format!(
            "crop_shape {:?}: each edge must be 1 to {MAX_CROP_EDGE}",
            m.crop_shape
        ));
    }
    // Edges are at most 4096, so the product fits a u64 (2^36).
    let voxels: u64 = m.crop_shape.iter().map(|&v| v as u64).product();
    if voxels > MAX_CHUNK_VOXELS as u64 {
        return Err(format!(
            "crop_shape {:?} is {voxels} voxels a chunk; at most {MAX_CHUNK_VOXELS} are supported",
            m.crop_shape
        ));
    }
    if m.clip_hu[0] > m.clip_hu[1] {
        return Err(format!("clip_hu {:?}: lower above upper", m.clip_hu));
    }
    if m.positives > m.candidates {
        return Err(format!(
            "positives {} exceeds candidates {}",
            m.positives, m.candidates
        ));
    }
    let raw = (m.candidates as u64).checked_mul(voxels * 2);
    if raw != Some(m.raw_bytes) {
        return Err(format!(
            "raw_bytes {} is not candidates {} × {voxels} voxels × 2 bytes",
            m.raw_bytes, m.candidates
        ));
    }
    // Fixed-size parts of index.bin: magic, version, three counts, then at
    // least 8 bytes per series, 16 per shard and a record per candidate.
    let needed = [
        (m.candidates, ENTRY_RECORD_BYTES),
        (m.series, 8),
        (m.shards, 16),
    ]
    .iter()
    .try_fold(36u64, |sum, &(n, each)| {
        (n as u64).checked_mul(each as u64)?.checked_add(sum)
    });
    if needed.is_none_or(|b| b > m.index_bytes) {
        return Err(format!(
            "candidates {}, series {} and shards {} cannot fit in index_bytes {}",
            m.candidates, m.series, m.shards, m.index_bytes
        ));
    }
    Ok(())
}
