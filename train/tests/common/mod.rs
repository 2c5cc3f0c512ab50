//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The Python with torch/tensorboard/safetensors used for cross-checks:
/// `LUNA_PYTHON`, else the project venv. Panics (fails the test) when absent.
pub fn python() -> PathBuf {
    let path = std::env::var_os("LUNA_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/luna-toolkit/venv/bin/python"))
        })
        .expect("neither LUNA_PYTHON nor HOME is set");
    assert!(
        path.exists(),
        "cross-check Python {} not found: run scripts/setup.sh or set LUNA_PYTHON",
        path.display()
    );
    path
}

/// Runs `script` with the cross-check Python and returns its stdout as JSON.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let stdout = python_stdout(script, args, |_| {});
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}):\n{stdout}"))
}

/// Runs `script` with the cross-check Python, after `configure` has set up
/// the command (environment, ...); fails the test with Python's stderr when
/// the script fails, else returns its stdout.
pub fn python_stdout(
    script: &str,
    args: &[&std::ffi::OsStr],
    configure: impl FnOnce(&mut Command),
) -> String {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).args(args);
    configure(&mut cmd);
    let out = cmd
        .output()
        .expect("failed to start the cross-check Python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `target/<profile>/`, where cargo put this test's binaries.
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

/// The workspace's `prepcache` binary, built on demand when a plain
/// `cargo test` did not build it.
pub fn prepcache() -> PathBuf {
    let dir = target_profile_dir();
    let bin = dir.join("prepcache");
    if !bin.exists() {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "-p", "prepcache", "--bin", "prepcache"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo to build prepcache");
        assert!(status.success(), "building prepcache failed");
    }
    bin
}

/// A tiny synthetic LUNA-like dataset turned into a cache under `root`.
pub fn synthetic_cache(root: &std::path::Path, series: usize, seed: u64) -> PathBuf {
    let data = root.join("data");
    let cache = root.join("cache");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(prepcache())
            .args(args)
            .output()
            .expect("running prepcache");
        assert!(
            out.status.success(),
            "prepcache {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (series, seed) = (series.to_string(), seed.to_string());
    run(&[
        "synth".as_ref(),
        "--out".as_ref(),
        data.as_os_str(),
        "--series".as_ref(),
        series.as_ref(),
        "--seed".as_ref(),
        seed.as_ref(),
    ]);
    run(&[
        "build".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        cache.as_os_str(),
        "--threads".as_ref(),
        "2".as_ref(),
    ]);
    cache
}

/// Runs the `train` binary; panics with its output when it fails.
pub fn train(args: &[&std::ffi::OsStr]) -> String {
    let (ok, text) = train_output(args);
    assert!(ok, "train {args:?} failed:\n{text}");
    text
}

/// Runs the `train` binary and returns whether it succeeded with its
/// stdout and stderr, for tests that expect it to fail.
pub fn train_output<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
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
pub fn find_dir(dir: &std::path::Path, part: &str) -> PathBuf {
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
pub fn metrics_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line is JSON"))
        .collect()
}
