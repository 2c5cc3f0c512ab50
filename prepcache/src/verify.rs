//! `prepcache verify`: re-read every chunk and check it against the index.

use std::path::Path;

use anyhow::Result;
use rayon::prelude::*;
use shared::cache::{CacheError, CacheReader};

/// Problems found, one line each; empty means the cache is sound.
pub fn verify(dir: &Path) -> Result<Vec<String>> {
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
