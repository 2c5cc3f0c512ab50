//! Helpers for driving the real `prepcache` binary on real files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_prepcache");

pub fn prepcache(args: &[&str]) -> Output {
    Command::new(BIN)
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

/// `uid → .mhd` of the data set.
pub fn scans(data: &Path) -> Vec<(String, PathBuf)> {
    shared::luna::find_series(data)
        .expect("find_series")
        .into_iter()
        .collect()
}

pub fn python() -> PathBuf {
    let py = std::env::var_os("LUNA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/luna-toolkit/venv/bin/python")
        });
    assert!(
        py.exists(),
        "Python for the cross-check not found at {} (set LUNA_PYTHON or run scripts/setup.sh)",
        py.display()
    );
    py
}
