//! Flags past their limits and ordinary errors: one line on stderr, exit 1,
//! at once, whatever `RUST_BACKTRACE` says; a batch far above the epoch
//! allocates for the epoch; a failed `eval` keeps the previous outputs.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run_with_backtrace(bin: &Path, args: &[&OsStr]) -> Output {
    Command::new(bin)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// `train ARGS` fails quickly with exit 1 and exactly one stderr line
/// containing every one of `needles`.
fn one_line_error(bin: &Path, args: &[&str], needles: &[&str]) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let started = Instant::now();
    let out = run_with_backtrace(bin, &args);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}:\n{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: no `{needle}` in {stderr}"
        );
    }
    assert!(
        elapsed < Duration::from_secs(20),
        "{args:?} took {elapsed:?}"
    );
}

#[test]
fn every_flag_past_its_limit_is_one_line_and_exit_1() {
    let train = luna_e2e::train::bin();
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("nowhere");
    let nowhere = nowhere.to_str().unwrap();
    let out = tmp.path().join("p.csv");
    let out = out.to_str().unwrap();
    let model = ["--cache", nowhere, "--checkpoint", nowhere];
    for (sub, extra, flag) in [
        ("eval", vec![], ["--num-workers", "100000"]),
        ("eval", vec![], ["--batch-size", "100001"]),
        ("predict", vec!["--out", out], ["--num-workers", "100000"]),
        ("predict", vec!["--out", out], ["--batch-size", "100001"]),
    ] {
        let mut args = vec![sub];
        args.extend(model);
        args.extend(extra);
        args.extend(flag);
        one_line_error(&train, &args, &[flag[0], flag[1]]);
    }
    one_line_error(
        &train,
        &[
            "bench-loader",
            "--cache",
            nowhere,
            "--num-workers",
            "100000",
        ],
        &["--num-workers", "100000"],
    );
    one_line_error(
        &train,
        &["--cache", nowhere, "--batch-size", "100001"],
        &["--batch-size", "100001", "100000"],
    );
    one_line_error(
        &train,
        &["--cache", nowhere, "--tb-prefix", "../x"],
        &["--tb-prefix", "../x"],
    );
    one_line_error(
        &train,
        &[
            "score",
            "--predictions",
            nowhere,
            "--annotations",
            nowhere,
            "--bootstrap",
            "10000000",
        ],
        &["--bootstrap", "10000000", "at most 10000"],
    );
}

#[test]
fn ordinary_errors_are_one_line_even_with_rust_backtrace_set() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.csv");
    let missing = missing.to_str().unwrap();
    one_line_error(
        &luna_e2e::train::bin(),
        &["score", "--predictions", missing, "--annotations", missing],
        &["missing.csv"],
    );
    one_line_error(
        &luna_e2e::train::bin(),
        &["--cache", missing, "--epochs", "1"],
        &["missing.csv"],
    );
    one_line_error(
        &luna_e2e::prepcache::bin(),
        &["info", missing],
        &["missing.csv"],
    );
}

#[test]
fn a_batch_size_far_above_the_epoch_allocates_for_the_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 2, 4);
    let runs = tmp.path().join("runs");
    // Reaped by wait4 below, which also reports the child's peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(luna_e2e::train::bin())
        .args(["--cache".as_ref(), cache.as_os_str()])
        .args(["--runs".as_ref(), runs.as_os_str()])
        .args(["--device", "cpu", "--threads", "1", "--num-workers", "2"])
        .args(["--batch-size", "100000", "--epoch-samples", "8"])
        .args(["--val-samples", "4", "--epochs", "1", "bigbatch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, peak_kib) = wait_with_peak_rss(child.id());
    assert!(status == 0, "train failed with wait status {status}");
    // Buffers for 100000 crops would be ~14 GiB per slot; 8 crops need
    // well under a MiB, so the run stays near libtorch's own footprint.
    assert!(
        peak_kib < 2 * 1024 * 1024,
        "peak RSS {} MiB for an epoch of 8 samples",
        peak_kib / 1024
    );
}

/// Waits for `pid` (a child of this process) and returns its wait status
/// and its peak resident set in KiB (`ru_maxrss` of that child alone).
fn wait_with_peak_rss(pid: u32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4(2) fills both out-parameters
    // for a child this process spawned and has not reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(
        reaped,
        pid as i32,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    (status, usage.ru_maxrss)
}

/// A small tmpfs at a fresh folder, unmounted when dropped; `None` (with
/// the reason printed) where this process may not mount.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn eval_on_a_full_disk_keeps_the_previous_report_and_plots() {
    let Some(disk) = Tmpfs::mount("2m") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 2, 9);
    let runs = tmp.path().join("runs");
    let os = |args: &[&str]| args.iter().map(OsString::from).collect::<Vec<_>>();
    let mut args: Vec<OsString> = vec!["--cache".into(), cache.clone().into()];
    args.extend([OsString::from("--runs"), runs.clone().into()]);
    args.extend(os(&[
        "--device",
        "cpu",
        "--threads",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--epoch-samples",
        "16",
        "--val-samples",
        "8",
        "fulldisk",
    ]));
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    luna_e2e::train::train(&refs);
    let ckpt = luna_e2e::train::find_dir(&runs.join("p2ch12"), "-cls-fulldisk");
    let out = disk.dir.path().join("eval");
    let eval = || {
        let mut args: Vec<OsString> = os(&["eval", "--device", "cpu", "--threads", "1"]);
        for (flag, value) in [
            ("--cache", &cache),
            ("--checkpoint", &ckpt),
            ("--out", &out),
        ] {
            args.extend([OsString::from(flag), value.clone().into_os_string()]);
        }
        luna_e2e::train::train_output(&args)
    };
    let (ok, text) = eval();
    assert!(ok, "{text}");
    let before = files(&out);
    assert!(before.len() >= 4, "{before:?}");

    // Fill the disk to the last byte, then evaluate again.
    let filler = disk.dir.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    let mut byte = [0u8; 1];
    while std::io::Write::write_all(&mut file, &byte).is_ok() {
        byte[0] = 1;
    }
    drop(file);
    let (ok, text) = eval();
    assert!(!ok, "eval succeeded on a full disk:\n{text}");
    assert!(text.contains("eval.json"), "{text}");
    assert_eq!(files(&out), before, "the previous outputs changed");
}

/// Every file in `dir` with its bytes, sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}
