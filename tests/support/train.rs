//! Driving the real `train` binary and reading what its runs leave.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `train` executable.
pub fn bin() -> PathBuf {
    crate::workspace_bin("train")
}

/// Runs `train`; panics with its output when it fails.
pub fn train(args: &[&OsStr]) -> String {
    let (ok, text) = train_output(args);
    assert!(ok, "train {args:?} failed:\n{text}");
    text
}

/// Runs `train` and returns whether it succeeded with its stdout and
/// stderr, for tests that expect it to fail.
pub fn train_output<S: AsRef<OsStr>>(args: &[S]) -> (bool, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("running train");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The single sub-directory of `dir` whose name contains `part`.
pub fn find_dir(dir: &Path, part: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(part))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {part} dir in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap_or_default()
}

/// The JSON lines of a metrics file.
pub fn metrics_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line is JSON"))
        .collect()
}

/// The flags of a tiny seeded CPU run on `cache` under `runs`: one epoch of
/// 16 balanced samples (unless `--epochs` follows), for tests about what a
/// run leaves rather than what it learns.
pub fn tiny_run_args(cache: &Path, runs: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        vec!["--cache".into(), cache.into(), "--runs".into(), runs.into()];
    for a in [
        "--device",
        "cpu",
        "--threads",
        "1",
        "--batch-size",
        "8",
        "--epoch-samples",
        "16",
        "--val-samples",
        "8",
        "--seed",
        "5",
        "--balanced=1",
    ] {
        args.push(a.into());
    }
    args
}
