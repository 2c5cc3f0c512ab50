//! What the PyTorch interop tests share: a small cache built in the test,
//! and a runner for Python snippets that import the project's scripts.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use shared::cache::{CacheBuilder, CacheReader, CandidateMeta, Codec, Filter};

pub const CROP: [usize; 3] = [32, 48, 48];

/// `<workspace>/scripts`.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// A cache of `series` scans × `per_series` candidates, every fifth one a
/// nodule, with HU-like pseudo-random chunks; returns its reader.
pub fn build_cache(dir: &Path, series: usize, per_series: usize) -> CacheReader {
    let voxels: usize = CROP.iter().product();
    let mut builder = CacheBuilder::create(dir, Codec::zstd(Filter::ByteShuffle, 3), CROP).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0i16; voxels];
    for s in 0..series {
        for k in 0..per_series {
            for v in chunk.iter_mut() {
                // xorshift64: cheap, deterministic, fills the whole clipped HU range.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *v = (state % 2001) as i16 - 1000;
            }
            let is_nodule = k % 5 == 0;
            let meta = CandidateMeta {
                center_xyz: [k as f64 * 11.0, s as f64 * 7.0, -3.5 * k as f64],
                center_irc: [16, 24 + k as i32, 24],
                is_nodule,
                diameter_mm: if is_nodule { 4.0 + k as f64 } else { 0.0 },
            };
            builder.push(&format!("1.2.840.{s}"), meta, &chunk).unwrap();
        }
    }
    builder.finish("pytorch-interop-test").unwrap();
    CacheReader::open(dir).unwrap()
}

/// Runs a Python snippet (with `scripts/` importable, one thread) and parses
/// the JSON it prints last.
pub fn run_python(code: &str, args: &[&OsStr]) -> serde_json::Value {
    let stdout = crate::common::python_stdout(code, args, |cmd| {
        cmd.env("PYTHONPATH", scripts_dir())
            .env("OMP_NUM_THREADS", "1");
    });
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("python printed no JSON ({e}):\n{stdout}"))
}

/// The same `[2,1,32,48,48]` input in both languages: `sin(0.37 i) * 800`.
pub const INPUT_PY: &str =
    "(torch.arange(2 * 32 * 48 * 48, dtype=torch.float32) * 0.37).sin().mul(800.0).view(2, 1, 32, 48, 48)";

pub fn input() -> tch::Tensor {
    let n = 2 * 32 * 48 * 48;
    let idx = tch::Tensor::arange(n, (tch::Kind::Float, tch::Device::Cpu));
    ((idx * 0.37).sin() * 800.0).view([2, 1, 32, 48, 48])
}

pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}
