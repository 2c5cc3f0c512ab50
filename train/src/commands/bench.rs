//! `train bench-loader` and `train bench-step`: the figures `make bench`
//! compares with the book's and PyTorch's.

use anyhow::Result;

use crate::bench::{loader, step};
use crate::config::cli::{BenchLoaderArgs, BenchStepArgs};
use crate::config::device::parse_device;

pub fn loader(a: &BenchLoaderArgs) -> Result<()> {
    let report = loader::run(&loader::BenchLoaderOptions {
        cache: a.cache.clone(),
        max_workers: a.num_workers as usize,
        batch_size: a.batch_size as usize,
        balanced: a.balanced.map(|r| r as usize),
        samples: a.samples,
        device: parse_device(&a.device)?,
        seed: 0,
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        loader::print(&report);
    }
    Ok(())
}

pub fn step(a: &BenchStepArgs) -> Result<()> {
    if let Some(n) = a.threads {
        tch::set_num_threads(n);
    }
    let device = parse_device(&a.device)?;
    for figure in step::run(&a.batch_sizes, a.steps, a.warmup, device) {
        println!("{}", serde_json::to_string(&figure)?);
    }
    Ok(())
}
