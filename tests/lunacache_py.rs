//! scripts/lunacache.py reads the same chunks and metadata as the Rust reader,
//! of a classifier cache and of both sub-caches of a segmentation cache.

use std::fs;
use std::path::Path;
use std::process::Command;

use luna_e2e::prepcache::*;
use luna_e2e::python::python;
use shared::cache::CacheReader;

const DUMP: &str = r#"
import json, struct, sys
sys.path.insert(0, sys.argv[1])
from lunacache import LunaCache
cache = LunaCache(sys.argv[2])
shape = tuple(int(v) for v in sys.argv[5].split(","))
with open(sys.argv[3], "wb") as f:
    for i in range(len(cache)):
        c = cache.chunk(i)
        assert c.shape == shape and c.dtype.name == "int16", (c.shape, c.dtype)
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
    python_matches_rust(&cache_dir, [32, 48, 48]);
}

/// Each sub-cache of `prepcache seg`'s output: 8 planes a chunk, the last
/// the mask as 0/1.
#[test]
fn python_reader_reads_segmentation_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 22);
    let out = tmp.path().join("seg");
    ok(&[
        "seg",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--val-stride",
        "3",
    ]);
    let val = CacheReader::open(&out.join("seg-val")).unwrap();
    let [planes, rows, cols] = val.manifest().crop_shape;
    assert_eq!(planes, 8);
    for (sub, shape) in [("seg-train", [8, 96, 96]), ("seg-val", [8, rows, cols])] {
        let chunks = python_matches_rust(&out.join(sub), shape);
        let plane = shape[1] * shape[2];
        let masks = chunks.chunks(8 * plane).flat_map(|c| &c[7 * plane..]);
        let on = masks.fold(0, |n, &m| {
            assert!(m == 0 || m == 1, "{sub}: mask value {m}");
            n + usize::from(m == 1)
        });
        assert!(on > 0, "{sub}: no mask pixel");
    }
}

/// Python's chunks and metadata are the Rust reader's, every one of
/// `shape`; returns the chunks, in order.
fn python_matches_rust(cache_dir: &Path, shape: [usize; 3]) -> Vec<i16> {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let (chunks, metas) = (tmp.path().join("chunks.bin"), tmp.path().join("meta.json"));
    let shape_arg = shape.map(|v| v.to_string()).join(",");
    let out = Command::new(python())
        .args([
            "-c",
            DUMP,
            s(&scripts),
            s(cache_dir),
            s(&chunks),
            s(&metas),
            &shape_arg,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cache = CacheReader::open(cache_dir).unwrap();
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
    py_chunks
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}
