//! `train bench-loader`: how fast the loader fills batch buffers, with no
//! model, against the bound of single-thread decompression × workers.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use shared::cache::CacheReader;
use tch::Device;

use crate::data::loader::{Loader, LoaderConfig, LoaderError};
use crate::data::sampler::{Balance, TrainSampler};
use crate::data::split::{Split, SplitRule};
use shared::luna::SplitBy;

#[derive(Debug, Clone)]
pub struct BenchLoaderOptions {
    pub cache: std::path::PathBuf,
    pub max_workers: usize,
    pub batch_size: usize,
    pub balanced: Option<usize>,
    pub samples: usize,
    pub device: Device,
    pub seed: u64,
}

#[derive(Debug, Serialize)]
pub struct WorkerFigure {
    pub workers: usize,
    pub samples_per_s: f64,
    pub mb_per_s: f64,
    /// Of `workers ×` the single-thread decompression rate.
    pub fraction_of_bound: f64,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchLoaderReport {
    pub cache: String,
    pub device: String,
    pub batch_size: usize,
    pub samples: usize,
    pub chunk_bytes: usize,
    /// Single-thread `read_chunk` (CRC + zstd + unshuffle) over the same order.
    pub single_thread_samples_per_s: f64,
    pub single_thread_mb_per_s: f64,
    pub by_workers: Vec<WorkerFigure>,
}

pub fn run(opts: &BenchLoaderOptions) -> Result<BenchLoaderReport> {
    let reader = Arc::new(
        CacheReader::open(&opts.cache)
            .with_context(|| format!("opening cache {}", opts.cache.display()))?,
    );
    let entries = reader.entries();
    // The book's split, as training's default.
    let rule = SplitRule {
        by: SplitBy::Candidate,
        val_stride: 10,
    };
    let train_idx = Split::Train.of(&reader, rule);
    let sampler = TrainSampler::new(
        train_idx,
        |i| entries[i as usize].is_nodule,
        opts.balanced.map(|r| Balance::ratio(r as u32)),
        Some(opts.samples),
        opts.seed,
    )
    .context("sampling the training split")?;
    let order = sampler.epoch_order(1);
    let voxels = reader.chunk_voxels();
    let chunk_bytes = voxels * 2;

    // Warm the page cache so every configuration reads from memory.
    let mut dec = reader.decoder();
    let mut out = vec![0i16; voxels];
    for &i in &order {
        reader.read_chunk(&mut dec, i as usize, &mut out)?;
    }
    let t = Instant::now();
    for &i in &order {
        reader.read_chunk(&mut dec, i as usize, &mut out)?;
    }
    let single = order.len() as f64 / t.elapsed().as_secs_f64();

    let mut by_workers = Vec::new();
    for workers in 1..=opts.max_workers.max(1) {
        let mut loader = Loader::new(
            Arc::clone(&reader),
            LoaderConfig {
                batch_size: opts.batch_size,
                num_workers: workers,
                device: opts.device,
            },
        );
        let t = Instant::now();
        loader.run_epoch(&order, |batch| -> Result<(), LoaderError> {
            if let Device::Cuda(i) = opts.device {
                // Count the copy to the device as delivered only once it landed.
                let _ = batch.images.size();
                tch::Cuda::synchronize(i as i64);
            }
            Ok(())
        })?;
        let rate = order.len() as f64 / t.elapsed().as_secs_f64();
        by_workers.push(WorkerFigure {
            workers,
            samples_per_s: rate,
            mb_per_s: rate * chunk_bytes as f64 / 1e6,
            fraction_of_bound: rate / (single * workers as f64),
            peak_rss_mb: peak_rss_mb(),
        });
    }
    Ok(BenchLoaderReport {
        cache: opts.cache.display().to_string(),
        device: format!("{:?}", opts.device),
        batch_size: opts.batch_size,
        samples: order.len(),
        chunk_bytes,
        single_thread_samples_per_s: single,
        single_thread_mb_per_s: single * chunk_bytes as f64 / 1e6,
        by_workers,
    })
}

/// The process's high-water resident set (Linux), to show memory stays flat.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub fn print(r: &BenchLoaderReport) {
    println!(
        "bench-loader: {} samples of {} KB, batch {}, device {}",
        r.samples,
        r.chunk_bytes / 1024,
        r.batch_size,
        r.device
    );
    println!(
        "bound (1 thread read_chunk): {:.0} samples/s, {:.0} MB/s",
        r.single_thread_samples_per_s, r.single_thread_mb_per_s
    );
    println!("workers  samples/s     MB/s  of bound  peak RSS MB");
    for w in &r.by_workers {
        println!(
            "{:>7}  {:>9.0}  {:>7.0}  {:>7.0}%  {:>11.0}",
            w.workers,
            w.samples_per_s,
            w.mb_per_s,
            100.0 * w.fraction_of_bound,
            w.peak_rss_mb
        );
    }
}
