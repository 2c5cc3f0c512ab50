//! scripts/lunacache.py reads the same chunks and metadata as the Rust reader.

use std::fs;
use std::process::Command;

use luna_e2e::prepcache::*;
use luna_e2e::python::python;
use shared::cache::CacheReader;

const DUMP: &str = r#"
import json, struct, sys
sys.path.insert(0, sys.argv[1])
from lunacache import LunaCache
cache = LunaCache(sys.argv[2])
with open(sys.argv[3], "wb") as f:
    for i in range(len(cache)):
        c = cache.chunk(i)
        assert c.shape == (32, 48, 48) and c.dtype.name == "int16", (c.shape, c.dtype)
        f.write(c.astype("<i2").tobytes())
# Floats as their bit patterns: JSON text would round-trip them only approximately.
bits = lambda v: struct.unpack("<Q", struct.pack("<d", v))[0]
metas = []
for i in range(len(cache)):
    m = cache.meta(i)
    m["diameter_mm"] = bits(m["diameter_mm"])
    m["center_xyz"] = [bits(v) for v in m["center_xyz"]]
    metas.append(m)
with open(sys.argv[4], "w") as f:
    json.dump(metas, f)
"#;

#[test]
fn python_reader_matches_the_rust_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2, 21);
    let cache_dir = tmp.path().join("cache");
    build(&data, &cache_dir, &[]);
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let (chunks, metas) = (tmp.path().join("chunks.bin"), tmp.path().join("meta.json"));
    let out = Command::new(python())
        .args([
            "-c",
            DUMP,
            s(&scripts),
            s(&cache_dir),
            s(&chunks),
            s(&metas),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cache = CacheReader::open(&cache_dir).unwrap();
    let py_chunks = fs::read(&chunks).unwrap();
    let py_meta: Vec<serde_json::Value> =
        serde_json::from_slice(&fs::read(&metas).unwrap()).unwrap();
    let n = cache.chunk_voxels();
    assert_eq!(py_meta.len(), cache.len());
    assert_eq!(py_chunks.len(), cache.len() * n * 2);
    let mut dec = cache.decoder();
    let mut chunk = vec![0i16; n];
    for (i, e) in cache.entries().iter().enumerate() {
        cache.read_chunk(&mut dec, i, &mut chunk).unwrap();
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(
            bytes == py_chunks[i * n * 2..(i + 1) * n * 2],
            "chunk {i} differs"
        );
        let m = &py_meta[i];
        assert_eq!(m["series_uid"], cache.series_uid(e.series), "meta {i}");
        assert_eq!(m["is_nodule"], e.is_nodule);
        assert_eq!(m["diameter_mm"].as_u64(), Some(e.diameter_mm.to_bits()));
        let xyz: Vec<u64> = m["center_xyz"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(xyz, e.center_xyz.map(f64::to_bits));
        let irc: Vec<i64> = m["center_irc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(irc, e.center_irc.map(i64::from));
    }
}
