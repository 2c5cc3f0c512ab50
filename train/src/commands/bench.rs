//! `train bench-loader` and `train bench-step`: the figures `make bench`
//! compares with the book's and PyTorch's.

use anyhow::Result;

use crate::bench::{loader, seg_step, step};
use crate::cli::{BenchLoaderArgs, BenchModel, BenchStepArgs};
use crate::config::device::parse_device;
use crate::config::resolve::Platform;
use crate::config::{check_batch_size, check_num_workers, ComputeConfig};

pub fn loader(a: &BenchLoaderArgs) -> Result<()> {
    check_batch_size(a.batch_size)?;
    check_num_workers(a.num_workers)?;
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
    for &n in &a.batch_sizes {
        check_batch_size(u32::try_from(n).unwrap_or(u32::MAX))?;
    }
    let compute = ComputeConfig {
        precision: a.precision,
        memory_format: a.memory_format,
    };
    let Platform { device, compute } = Platform::resolve(&a.device, a.threads, compute)?;
    let bench = step::StepBench {
        model: a.model.name(),
        batch_sizes: &a.batch_sizes,
        steps: a.steps,
        warmup: a.warmup,
        device,
        compute,
        inference: a.inference,
    };
    let figures = match a.model {
        BenchModel::Luna => step::run(&bench),
        BenchModel::Unet => seg_step::run(
            &bench,
            seg_step::SegShape {
                window: a.window,
                size: a.size,
                infer_batch: a.infer_batch as usize,
            },
        ),
    };
    for figure in figures {
        println!("{}", serde_json::to_string(&figure)?);
    }
    Ok(())
}
