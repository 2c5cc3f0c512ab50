//! The cache a command reads, opened and checked against the model.

use std::path::Path;

use anyhow::{bail, Context, Result};
use shared::cache::CacheReader;

use crate::model;

/// Opens the cache and checks that its crops fit the model.
pub fn open_cache(cache: &Path) -> Result<CacheReader> {
    let reader =
        CacheReader::open(cache).with_context(|| format!("opening cache {}", cache.display()))?;
    let crop = reader.manifest().crop_shape;
    let expected: Vec<usize> = model::INPUT_SHAPE.iter().map(|&d| d as usize).collect();
    if crop[..] != expected[..] {
        bail!(
            "{}: crops are {crop:?}, LunaModel needs {expected:?}",
            cache.display()
        );
    }
    Ok(reader)
}
