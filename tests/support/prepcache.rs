//! Driving the real `prepcache` binary on real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `prepcache` executable.
pub fn bin() -> PathBuf {
    crate::workspace_bin("prepcache")
}

pub fn prepcache(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("running prepcache")
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run and require success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = prepcache(args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "prepcache {args:?} failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A tiny synthetic data set of `series` scans under `root/data`.
pub fn synth(root: &Path, series: usize, seed: u64) -> PathBuf {
    let data = root.join("data");
    ok(&[
        "synth",
        "--out",
        s(&data),
        "--series",
        &series.to_string(),
        "--seed",
        &seed.to_string(),
        "--preset",
        "tiny",
    ]);
    data
}

pub fn build(data: &Path, cache: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "build",
        "--data",
        s(data),
        "--out",
        s(cache),
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// A tiny synthetic dataset turned into a cache under `root/cache`.
pub fn synthetic_cache(root: &Path, series: usize, seed: u64) -> PathBuf {
    let data = synth(root, series, seed);
    let cache = root.join("cache");
    build(&data, &cache, &[]);
    cache
}

/// `uid → .mhd` of the data set.
pub fn scans(data: &Path) -> Vec<(String, PathBuf)> {
    shared::luna::find_series(data)
        .expect("find_series")
        .into_iter()
        .collect()
}

/// A small cache whose bytes depend on nothing but this code (not on the
/// synthetic-data generator, which may change): 2 series × 40 candidates,
/// every 8th a nodule with a bright blob at its centre, pseudo-random HU
/// elsewhere. The checkpoint fixture of `train/tests/fixtures/checkpoint-v1`
/// was trained on exactly this cache.
pub fn fixed_cache(dir: &Path) -> PathBuf {
    use shared::cache::{CacheBuilder, CandidateMeta, Codec, Filter};
    const CROP: [usize; 3] = [32, 48, 48];
    let mut builder = CacheBuilder::create(dir, Codec::zstd(Filter::ByteShuffle, 3), CROP)
        .expect("creating the fixed cache");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut chunk = vec![0i16; CROP.iter().product()];
    for series in 0..2 {
        for k in 0..40 {
            let is_nodule = k % 8 == 0;
            for (v, out) in chunk.iter_mut().enumerate() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let (i, r, c) = (v / (48 * 48), v / 48 % 48, v % 48);
                let d2 = (i as i64 - 16).pow(2) + (r as i64 - 24).pow(2) + (c as i64 - 24).pow(2);
                let base = (state % 400) as i16 - 900;
                *out = if is_nodule && d2 < 36 {
                    base + 850
                } else {
                    base
                };
            }
            let meta = CandidateMeta {
                center_xyz: [k as f64 * 9.0, series as f64 * 5.0, -2.5 * k as f64],
                center_irc: [16, 24, 24],
                is_nodule,
                diameter_mm: if is_nodule { 6.0 } else { 0.0 },
            };
            builder
                .push(&format!("1.2.826.0.1.{series}"), meta, &chunk)
                .expect("writing the fixed cache");
        }
    }
    builder
        .finish("fixed-test-cache")
        .expect("finishing the fixed cache");
    dir.to_owned()
}

/// The temporary files (`*.tmp`) left in a cache's `shards/`.
pub fn temporaries(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("shards"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect()
}
