//! `prepcache verify`: re-read every chunk and check it against the index.
//! A folder `prepcache seg` wrote is verified as its two sub-caches.

use std::path::Path;

use anyhow::Result;
use rayon::prelude::*;
use shared::cache::format::MANIFEST_FILE;
use shared::cache::{CacheError, CacheReader};
use shared::seg::{TRAIN_DIR, VAL_DIR};

/// Problems found, one line each; empty means the cache is sound. A
/// segmentation cache's folder (no manifest of its own, a `seg-train/`
/// and a `seg-val/`) is both sub-caches, each problem prefixed with the
/// sub-cache's name.
pub fn verify(dir: &Path) -> Result<Vec<String>> {
    let is_seg_root = !dir.join(MANIFEST_FILE).exists()
        && [TRAIN_DIR, VAL_DIR].iter().all(|d| dir.join(d).is_dir());
    if !is_seg_root {
        return verify_cache(dir);
    }
    let mut problems = Vec::new();
    for sub in [TRAIN_DIR, VAL_DIR] {
        let found = verify_cache(&dir.join(sub))?;
        problems.extend(found.into_iter().map(|p| format!("{sub}/: {p}")));
    }
    Ok(problems)
}

fn verify_cache(dir: &Path) -> Result<Vec<String>> {
    let cache = match CacheReader::open(dir) {
        Ok(c) => c,
        Err(e) => return Ok(vec![e.to_string()]),
    };
    let mut problems = Vec::new();
    let m = cache.manifest();
    let positives = cache.entries().iter().filter(|e| e.is_nodule).count();
    if positives != m.positives {
        problems.push(format!(
            "index holds {positives} positives, the manifest says {}",
            m.positives
        ));
    }
    // Frames tile each shard exactly: a gap or overlap means the index lies.
    let mut used = vec![0u64; cache.shards().len()];
    for e in cache.entries() {
        used[e.shard as usize] += u64::from(e.length);
    }
    for (s, shard) in cache.shards().iter().enumerate() {
        if used[s] != shard.bytes {
            problems.push(format!(
                "{}: {} bytes, the index accounts for {}",
                shard.path, shard.bytes, used[s]
            ));
        }
    }
    let mut bad: Vec<(usize, CacheError)> = (0..cache.len())
        .into_par_iter()
        .map_init(
            || (cache.decoder(), vec![0i16; cache.chunk_voxels()]),
            |(dec, buf), i| cache.read_chunk(dec, i, buf).err().map(|e| (i, e)),
        )
        .flatten()
        .collect();
    bad.sort_by_key(|(i, _)| *i);
    problems.extend(bad.into_iter().map(|(_, e)| e.to_string()));
    Ok(problems)
}
