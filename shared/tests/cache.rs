//! Writer → reader round trips and the reader's refusals, on real cache
//! directories.

use std::fs;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shared::cache::format::{ENTRY_RECORD_BYTES, INDEX_FILE, INDEX_MAGIC, MANIFEST_FILE};
use shared::cache::{
    CacheBuilder, CacheError, CacheReader, CandidateMeta, Codec, Filter, FORMAT_VERSION,
};

const SHAPE: [usize; 3] = [4, 6, 5];
const VOXELS: usize = 4 * 6 * 5;

struct Written {
    /// (series uid, meta, chunk) in push order.
    items: Vec<(String, CandidateMeta, Vec<i16>)>,
}

/// CT-like chunks: mostly air at -1000, some tissue, some noise, some values at
/// the clip limits.
fn random_chunk(rng: &mut ChaCha8Rng) -> Vec<i16> {
    (0..VOXELS)
        .map(|_| match rng.random_range(0..4) {
            0 => -1000,
            1 => 1000,
            _ => rng.random_range(-1000..=1000),
        })
        .collect()
}

fn build(dir: &Path, codec: Codec, n: usize, seed: u64) -> Written {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let uids = [
        "1.3.6.1.4.1.14519.5.2.1.6279.6001.100",
        "1.2.840.113654.7",
        "1.3.6.1.4.1.9328.50.1.2",
    ];
    let mut builder = CacheBuilder::create(dir, codec, SHAPE).unwrap();
    let mut items = Vec::new();
    for k in 0..n {
        let uid = uids[rng.random_range(0..uids.len())].to_string();
        let is_nodule = k % 5 == 0;
        let meta = CandidateMeta {
            center_xyz: [
                rng.random_range(-200.0..200.0),
                rng.random_range(-200.0..200.0),
                rng.random_range(-400.0..0.0),
            ],
            center_irc: [
                rng.random_range(0..100),
                rng.random_range(0..512),
                rng.random_range(0..512),
            ],
            is_nodule,
            // Ties on diameter so the order falls through to uid and xyz.
            diameter_mm: if is_nodule {
                [4.5, 10.0, 4.5][k % 3]
            } else {
                0.0
            },
        };
        let chunk = random_chunk(&mut rng);
        builder.push(&uid, meta, &chunk).unwrap();
        items.push((uid, meta, chunk));
    }
    builder.finish("cache-test").unwrap();
    Written { items }
}

/// Python's `sorted(..., reverse=True)` on (is_nodule, diameter, uid, xyz).
fn book_sorted(
    items: &[(String, CandidateMeta, Vec<i16>)],
) -> Vec<(String, CandidateMeta, Vec<i16>)> {
    let mut v = items.to_vec();
    v.sort_by(|a, b| {
        let ka = (a.1.is_nodule, a.1.diameter_mm, &a.0, a.1.center_xyz);
        let kb = (b.1.is_nodule, b.1.diameter_mm, &b.0, b.1.center_xyz);
        kb.partial_cmp(&ka).unwrap()
    });
    v
}

#[test]
fn round_trip_is_exact_and_in_book_order() {
    for filter in [Filter::ByteShuffle, Filter::None] {
        let tmp = tempfile::tempdir().unwrap();
        let written = build(tmp.path(), Codec::zstd(filter, 3), 60, 1);
        let cache = CacheReader::open(tmp.path()).unwrap();
        let expected = book_sorted(&written.items);
        assert_eq!(cache.len(), 60);
        assert_eq!(cache.manifest().format_version, FORMAT_VERSION);
        assert_eq!(cache.manifest().crop_shape, SHAPE);
        assert_eq!(cache.manifest().codec.filter, filter);
        assert_eq!(cache.manifest().positives, 12);
        assert_eq!(cache.manifest().series, 3);
        let mut dec = cache.decoder();
        let mut out = vec![0i16; VOXELS];
        for (i, (uid, meta, chunk)) in expected.iter().enumerate() {
            let e = cache.entries()[i];
            assert_eq!(cache.series_uid(e.series), uid);
            assert_eq!(
                (e.center_xyz, e.center_irc, e.is_nodule, e.diameter_mm),
                (
                    meta.center_xyz,
                    meta.center_irc,
                    meta.is_nodule,
                    meta.diameter_mm
                )
            );
            cache.read_chunk(&mut dec, i, &mut out).unwrap();
            assert_eq!(&out, chunk, "chunk {i}");
        }
        let stored: u64 = cache.shards().iter().map(|s| s.bytes).sum();
        assert_eq!(cache.manifest().stored_bytes, stored);
        assert_eq!(cache.manifest().raw_bytes, (60 * VOXELS * 2) as u64);
    }
}

#[test]
fn index_bin_has_the_documented_layout() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 7, 2);
    let cache = CacheReader::open(tmp.path()).unwrap();
    let bytes = fs::read(tmp.path().join(INDEX_FILE)).unwrap();
    assert_eq!(bytes[..8], INDEX_MAGIC);
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        FORMAT_VERSION
    );
    let u64_at = |p: usize| u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap());
    let mut p = 12;
    let n_series = u64_at(p) as usize;
    p += 8;
    for s in 0..n_series {
        let len = u64_at(p) as usize;
        assert_eq!(
            std::str::from_utf8(&bytes[p + 8..p + 8 + len]).unwrap(),
            cache.series_uids()[s]
        );
        p += 8 + len;
    }
    let n_shards = u64_at(p) as usize;
    p += 8;
    for s in 0..n_shards {
        let len = u64_at(p) as usize;
        assert_eq!(
            std::str::from_utf8(&bytes[p + 8..p + 8 + len]).unwrap(),
            cache.shards()[s].path
        );
        assert_eq!(u64_at(p + 8 + len), cache.shards()[s].bytes);
        p += 16 + len;
    }
    assert_eq!(u64_at(p) as usize, 7);
    p += 8;
    assert_eq!(bytes.len() - p, 7 * ENTRY_RECORD_BYTES);
    for (k, e) in cache.entries().iter().enumerate() {
        let r = &bytes[p + k * ENTRY_RECORD_BYTES..];
        let f64_at = |o: usize| f64::from_le_bytes(r[o..o + 8].try_into().unwrap());
        let i32_at = |o: usize| i32::from_le_bytes(r[o..o + 4].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(r[o..o + 4].try_into().unwrap());
        assert_eq!(u32_at(0), e.series);
        assert_eq!([f64_at(4), f64_at(12), f64_at(20)], e.center_xyz);
        assert_eq!([i32_at(28), i32_at(32), i32_at(36)], e.center_irc);
        assert_eq!(r[40] == 1, e.is_nodule);
        assert_eq!(f64_at(41), e.diameter_mm);
        assert_eq!(u32_at(49), e.shard);
        assert_eq!(u64::from_le_bytes(r[53..61].try_into().unwrap()), e.offset);
        assert_eq!(u32_at(61), e.length);
        assert_eq!(u32_at(65), e.crc32);
    }
}

#[test]
fn missing_manifest_reads_as_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 5, 3);
    fs::remove_file(tmp.path().join(MANIFEST_FILE)).unwrap();
    let err = CacheReader::open(tmp.path()).err().unwrap();
    assert!(matches!(err, CacheError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("rerun `prepcache build`"), "{err}");
}

#[test]
fn a_started_rebuild_hides_the_old_cache() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 5, 3);
    let _builder = CacheBuilder::create(tmp.path(), Codec::default(), SHAPE).unwrap();
    assert!(matches!(
        CacheReader::open(tmp.path()),
        Err(CacheError::Incomplete { .. })
    ));
}

#[test]
fn unknown_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 5, 4);
    let path = tmp.path().join(MANIFEST_FILE);
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    json["format_version"] = serde_json::json!(FORMAT_VERSION + 1);
    // A future version may also change other fields; the version check comes first.
    json["codec"] = serde_json::json!("something new");
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = CacheReader::open(tmp.path()).err().unwrap();
    match &err {
        CacheError::Version {
            found, expected, ..
        } => {
            assert_eq!((*found, *expected), (FORMAT_VERSION + 1, FORMAT_VERSION))
        }
        other => panic!("expected a version error, got {other}"),
    }
    assert!(err.to_string().contains("rebuild the cache"), "{err}");
}

#[test]
fn corrupt_byte_is_a_crc_mismatch_naming_the_candidate() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 20, 5);
    let (victim, shard_path, offset) = {
        let cache = CacheReader::open(tmp.path()).unwrap();
        let victim = 13;
        let e = cache.entries()[victim];
        (
            victim,
            tmp.path().join(&cache.shards()[e.shard as usize].path),
            e.offset + u64::from(e.length) / 2,
        )
    };
    let mut bytes = fs::read(&shard_path).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(&shard_path, bytes).unwrap();

    let cache = CacheReader::open(tmp.path()).unwrap();
    let mut dec = cache.decoder();
    let mut out = vec![0i16; VOXELS];
    let mut bad = Vec::new();
    for i in 0..cache.len() {
        if let Err(e) = cache.read_chunk(&mut dec, i, &mut out) {
            bad.push((i, e));
        }
    }
    assert_eq!(bad.len(), 1);
    let (i, err) = &bad[0];
    assert_eq!(*i, victim);
    let uid = cache.series_uid(cache.entries()[victim].series);
    match err {
        CacheError::Chunk {
            index,
            series_uid,
            reason,
            ..
        } => {
            assert_eq!((*index, series_uid.as_str()), (victim, uid));
            assert!(reason.contains("CRC32 mismatch"), "{reason}");
        }
        other => panic!("expected a chunk error, got {other}"),
    }
    assert!(err.to_string().contains(uid));
}

#[test]
fn truncated_shard_or_edited_index_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 10, 6);
    let shard = tmp
        .path()
        .join(&CacheReader::open(tmp.path()).unwrap().shards()[0].path);
    let bytes = fs::read(&shard).unwrap();
    fs::write(&shard, &bytes[..bytes.len() - 1]).unwrap();
    let err = CacheReader::open(tmp.path()).err().unwrap();
    assert!(
        matches!(err, CacheError::Corrupt { .. }) && err.to_string().contains("the index says"),
        "{err}"
    );
    fs::write(&shard, &bytes).unwrap();

    let index = tmp.path().join(INDEX_FILE);
    let mut idx = fs::read(&index).unwrap();
    let last = idx.len() - 1;
    idx[last] ^= 1;
    fs::write(&index, idx).unwrap();
    let err = CacheReader::open(tmp.path()).err().unwrap();
    assert!(
        err.to_string().contains("does not match the manifest"),
        "{err}"
    );
}

#[test]
fn wrong_output_length_or_index_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 3, 7);
    let cache = CacheReader::open(tmp.path()).unwrap();
    let mut dec = cache.decoder();
    assert!(cache
        .read_chunk(&mut dec, 0, &mut vec![0; VOXELS - 1])
        .is_err());
    assert!(cache.read_chunk(&mut dec, 3, &mut vec![0; VOXELS]).is_err());
}

#[test]
fn many_threads_read_every_chunk_concurrently() {
    let tmp = tempfile::tempdir().unwrap();
    let written = build(tmp.path(), Codec::default(), 200, 8);
    let expected = book_sorted(&written.items);
    let cache = CacheReader::open(tmp.path()).unwrap();
    let threads = 4;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (cache, expected) = (&cache, &expected);
            s.spawn(move || {
                let mut dec = cache.decoder();
                let mut out = vec![0i16; VOXELS];
                // Each thread walks all chunks from a different start, so reads overlap.
                for k in 0..cache.len() {
                    let i = (k + t * 50) % cache.len();
                    cache.read_chunk(&mut dec, i, &mut out).unwrap();
                    assert_eq!(out, expected[i].2);
                }
            });
        }
    });
}

/// Replace `index.bin` with `index` and make the manifest agree with it
/// (size, BLAKE3, header checksum), so only the index's own counts can
/// refuse it.
fn install_index(dir: &Path, index: &[u8], manifest: &shared::cache::Manifest) {
    let mut m = manifest.clone();
    fs::write(dir.join(INDEX_FILE), index).unwrap();
    m.index_bytes = index.len() as u64;
    m.fingerprint = shared::cache::format::index_fingerprint(index);
    m.header_checksum = Some(m.computed_header_checksum());
    shared::cache::writer::write_manifest(dir, &m).unwrap();
}

#[test]
fn an_index_count_the_file_cannot_hold_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 10, 9);
    let index = fs::read(tmp.path().join(INDEX_FILE)).unwrap();
    // Byte offsets of the counts in this index: series count at 12, the
    // first uid's length at 20, then the shard and entry counts.
    let cache = CacheReader::open(tmp.path()).unwrap();
    let series_bytes: usize = cache.series_uids().iter().map(|u| 8 + u.len()).sum();
    let shards_at = 20 + series_bytes;
    let shard_bytes: usize = cache.shards().iter().map(|s| 16 + s.path.len()).sum();
    let entries_at = shards_at + 8 + shard_bytes;
    let manifest = cache.manifest().clone();
    drop(cache);
    let huge = (1u64 << 60).to_le_bytes();
    for (at, field) in [
        (12, "series count"),
        (20, "series uid"),
        (shards_at, "shard count"),
        (entries_at, "entry count"),
    ] {
        let mut crafted = index.clone();
        crafted[at..at + 8].copy_from_slice(&huge);
        install_index(tmp.path(), &crafted, &manifest);
        let err = CacheReader::open(tmp.path()).err().unwrap();
        assert!(
            matches!(err, CacheError::Corrupt { .. })
                && err.to_string().contains(field)
                && err.to_string().contains(INDEX_FILE),
            "{field}: {err}"
        );
        install_index(tmp.path(), &index, &manifest);
    }
    CacheReader::open(tmp.path()).unwrap();
}

#[test]
fn a_manifest_without_header_checksum_still_opens_and_an_edited_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), Codec::default(), 5, 10);
    let path = tmp.path().join(MANIFEST_FILE);
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert!(original["header_checksum"].is_string());

    // As caches written before the field existed.
    let mut legacy = original.clone();
    legacy.as_object_mut().unwrap().remove("header_checksum");
    fs::write(&path, serde_json::to_vec(&legacy).unwrap()).unwrap();
    CacheReader::open(tmp.path()).unwrap();

    let mut edited = original.clone();
    edited["clip_hu"] = serde_json::json!([-1024, 1000]);
    fs::write(&path, serde_json::to_vec(&edited).unwrap()).unwrap();
    let err = CacheReader::open(tmp.path()).err().unwrap();
    assert!(err.to_string().contains("header_checksum"), "{err}");
}
