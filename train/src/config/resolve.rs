//! What a command decides once, from its settings, before any work starts
//! (ripgrep's low → high args): the seed, the schedule's span, libtorch's
//! threads, the device, the compute mode and the opened cache. Nothing
//! after this decides them again.

use std::sync::Arc;

use anyhow::Result;
use shared::cache::CacheReader;
use tch::Device;

use super::device::parse_device;
use super::{ComputeConfig, RunConfig};
use crate::data::cache::open_cache;

/// Where and how a command's model runs.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    pub device: Device,
    /// What `auto` became on `device`.
    pub compute: ComputeConfig,
}

impl Platform {
    /// Sets libtorch's CPU threads (its own choice when `None`), then finds
    /// the device `device` names and the compute mode it runs.
    pub fn resolve(device: &str, threads: Option<i32>, compute: ComputeConfig) -> Result<Self> {
        if let Some(n) = threads {
            tch::set_num_threads(n);
        }
        let device = parse_device(device)?;
        let compute = compute.resolve(device).map_err(anyhow::Error::msg)?;
        Ok(Platform { device, compute })
    }
}

/// A training run's settings with everything decided.
pub struct Resolved {
    /// The seed and the schedule's span filled in, the compute mode
    /// resolved, validated: what config.toml and checkpoints record.
    pub config: RunConfig,
    pub device: Device,
    pub reader: Arc<CacheReader>,
}

fn random_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        & 0xFFFF_FFFF
}

/// Decides `config`'s open settings and opens its cache.
pub fn resolve(config: &RunConfig) -> Result<Resolved> {
    let (config, device) = settle(config)?;
    let reader = Arc::new(open_cache(config.cache()?)?);
    Ok(Resolved {
        config,
        device,
        reader,
    })
}

/// Everything [`resolve`] decides but the cache: the seed, the schedule's
/// span, the validation, the threads, the device and the compute mode (for
/// a task whose data is not one candidate cache).
pub fn settle(config: &RunConfig) -> Result<(RunConfig, Device)> {
    let mut config = config.clone();
    config.run.seed.get_or_insert_with(random_seed);
    crate::optim::schedule::pin_epochs(&mut config.optimizer, config.run.epochs);
    config.validate()?;
    let platform = Platform::resolve(
        &config.run.device,
        threads(config.run.threads),
        config.compute,
    )?;
    config.compute = platform.compute;
    Ok((config, platform.device))
}

/// libtorch's spelling of a thread count (validated settings are at most
/// [`super::MAX_THREADS`]).
pub fn threads(n: Option<u32>) -> Option<i32> {
    n.map(|n| n as i32)
}
