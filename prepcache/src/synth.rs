//! `prepcache synth`: a synthetic LUNA-like data set, with a progress bar.

use std::path::Path;

use anyhow::{Context, Result};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use luna_synth::{generate, Preset, SynthOptions};

#[derive(Clone, Copy, ValueEnum)]
pub enum PresetArg {
    /// 128×128×(40–60) voxels, ~100 candidates per scan: tests and demos.
    Tiny,
    /// 512×512×(100–300) voxels, ~600 candidates per scan: like real LUNA.
    Luna,
}

pub fn run(out: &Path, series: usize, seed: u64, preset: PresetArg) -> Result<()> {
    let preset = match preset {
        PresetArg::Tiny => Preset::Tiny,
        PresetArg::Luna => Preset::Luna,
    };
    let opts = SynthOptions {
        out: out.to_owned(),
        series,
        seed,
        preset,
    };
    let bar = ProgressBar::new(series as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} series (ETA {eta})",
    ) {
        bar.set_style(style);
    }
    let summary = generate(&opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("writing the synthetic data set to {}", out.display()))?;
    bar.finish_and_clear();
    println!(
        "{}: {} series, {} candidates ({} positive), {:.1} MB",
        out.display(),
        summary.series,
        summary.candidates,
        summary.positives,
        summary.bytes as f64 / 1e6
    );
    Ok(())
}
