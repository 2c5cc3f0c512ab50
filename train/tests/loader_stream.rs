//! The loader delivers every requested crop, in order, with index labels.

use std::path::Path;
use std::sync::Arc;

use shared::cache::{CacheBuilder, CacheReader, CandidateMeta, Codec};
use tch::{Device, Kind};
use train::data::loader::{Loader, LoaderConfig, LoaderError};

const SHAPE: [usize; 3] = [32, 48, 48];

/// 23 candidates over 3 series; candidate k's crop is `k*10 + (voxel % 7)`
/// with k its position in the book order (nodules first, then by diameter).
fn build_cache(dir: &Path) -> CacheReader {
    let mut b = CacheBuilder::create(dir, Codec::default(), SHAPE).unwrap();
    let voxels: usize = SHAPE.iter().product();
    let mut chunk = vec![0i16; voxels];
    for k in 0..23usize {
        let is_nodule = k < 5;
        // Book order sorts by (is_nodule, diameter) descending: encode k in the diameter.
        let diameter_mm = 100.0 - k as f64;
        for (v, x) in chunk.iter_mut().enumerate() {
            *x = (k * 10 + v % 7) as i16;
        }
        let meta = CandidateMeta {
            center_xyz: [k as f64, 0.0, 0.0],
            center_irc: [16, 24, 24],
            is_nodule,
            diameter_mm,
        };
        b.push(&format!("1.2.3.{}", k % 3), meta, &chunk).unwrap();
    }
    b.finish("loader-test").unwrap();
    CacheReader::open(dir).unwrap()
}

#[derive(Debug)]
enum TestError {
    Loader(LoaderError),
    Stop,
}

impl From<LoaderError> for TestError {
    fn from(e: LoaderError) -> Self {
        TestError::Loader(e)
    }
}

#[test]
fn batches_hold_the_requested_crops_in_order_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    let reader = Arc::new(build_cache(dir.path()));
    assert_eq!(reader.len(), 23);
    for workers in [1, 3] {
        let mut loader = Loader::new(
            Arc::clone(&reader),
            LoaderConfig {
                batch_size: 4,
                num_workers: workers,
                device: Device::Cpu,
            },
        );
        // An order with repeats and a ragged last batch: 3 full batches + 2.
        let order: Vec<u32> = vec![22, 0, 5, 4, 1, 1, 17, 3, 9, 12, 0, 21, 6, 2];
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        loader
            .run_epoch::<TestError>(&order, |batch| {
                assert_eq!(batch.images.kind(), Kind::Int16);
                assert_eq!(batch.start, batch.index * 4);
                let n = batch.images.size()[0];
                sizes.push(n);
                assert_eq!(batch.images.size()[1..], [1, 32, 48, 48]);
                for j in 0..n {
                    let img = batch.images.get(j);
                    let k = (img.int64_value(&[0, 0, 0, 0]) / 10) as u32;
                    // The whole crop is k's pattern.
                    assert_eq!(
                        img.int64_value(&[0, 31, 47, 47]),
                        (k * 10) as i64 + ((32 * 48 * 48 - 1) % 7) as i64
                    );
                    let label = batch.labels.int64_value(&[j]);
                    assert_eq!(label, (k < 5) as i64, "label of candidate {k}");
                    seen.push(k);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, order, "workers {workers}");
        assert_eq!(sizes, vec![4, 4, 4, 2]);
    }
}

#[test]
fn a_consumer_error_stops_the_epoch_and_the_loader_is_reusable() {
    let dir = tempfile::tempdir().unwrap();
    let reader = Arc::new(build_cache(dir.path()));
    let mut loader = Loader::new(
        reader,
        LoaderConfig {
            batch_size: 2,
            num_workers: 2,
            device: Device::Cpu,
        },
    );
    let order: Vec<u32> = (0..23).collect();
    let mut calls = 0;
    let err = loader.run_epoch(&order, |_| {
        calls += 1;
        if calls == 3 {
            Err(TestError::Stop)
        } else {
            Ok(())
        }
    });
    assert!(matches!(err, Err(TestError::Stop)));
    assert_eq!(calls, 3);
    let mut total = 0;
    loader
        .run_epoch::<TestError>(&order, |b| {
            total += b.images.size()[0];
            Ok(())
        })
        .unwrap();
    assert_eq!(total, 23);
}

#[test]
fn a_corrupt_chunk_is_reported_with_its_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let reader = build_cache(dir.path());
    let e = reader.entries()[7];
    let shard = dir.path().join(&reader.shards()[e.shard as usize].path);
    drop(reader);
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[e.offset as usize + 3] ^= 0xFF;
    std::fs::write(&shard, bytes).unwrap();
    let reader = Arc::new(CacheReader::open(dir.path()).unwrap());
    let mut loader = Loader::new(
        reader,
        LoaderConfig {
            batch_size: 4,
            num_workers: 2,
            device: Device::Cpu,
        },
    );
    let err = loader
        .run_epoch::<TestError>(&(0..23).collect::<Vec<_>>(), |_| Ok(()))
        .unwrap_err();
    let TestError::Loader(LoaderError::Cache(e)) = err else {
        panic!("expected a cache error, got {err:?}")
    };
    let msg = e.to_string();
    assert!(msg.contains("7") && msg.contains(".zst"), "{msg}");
}

#[test]
fn a_kept_clone_of_a_cpu_batch_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let reader = Arc::new(build_cache(dir.path()));
    let mut loader = Loader::new(
        reader,
        LoaderConfig {
            batch_size: 2,
            num_workers: 2,
            device: Device::Cpu,
        },
    );
    let order: Vec<u32> = (0..23).rev().collect();
    for _epoch in 0..2 {
        // The borrow keeps `Batch` inside the call; a shallow clone escapes
        // it, and the ring must then leave the clone's memory alone.
        let mut kept = Vec::new();
        loader
            .run_epoch::<TestError>(&order, |batch| {
                kept.push(batch.images.shallow_clone());
                Ok(())
            })
            .unwrap();
        let firsts: Vec<u32> = kept
            .iter()
            .flat_map(|t| {
                (0..t.size()[0]).map(move |j| (t.int64_value(&[j, 0, 0, 0, 0]) / 10) as u32)
            })
            .collect();
        assert_eq!(firsts, order);
    }
}
