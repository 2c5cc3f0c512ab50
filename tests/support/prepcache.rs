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
