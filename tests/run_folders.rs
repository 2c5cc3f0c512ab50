//! Where a run writes (issue #21 items 1 and 2): a resumed run continues in
//! exactly the folder it was given, a new run never shares a folder, and a
//! run folder has one writer at a time.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use luna_e2e::prepcache::{s, synthetic_cache};
use luna_e2e::train::{find_dir, metrics_lines, tiny_run_args, train_output};

/// A finished one-epoch run with `extra` flags and `comment`; its folder.
fn one_epoch(cache: &Path, runs: &Path, comment: &str, extra: &[&str]) -> PathBuf {
    let mut args = tiny_run_args(cache, runs);
    args.extend(extra.iter().map(OsString::from));
    args.push(comment.into());
    let (ok, out) = train_output(&args);
    assert!(ok, "{out}");
    find_dir(&runs.join("p2ch12"), &format!("-cls-{comment}"))
}

fn resume(run: &Path, cache: &Path, epochs: &str) -> (bool, String) {
    train_output(&[
        "--resume",
        s(run),
        "--cache",
        s(cache),
        "--epochs",
        epochs,
        "--device",
        "cpu",
        "--threads",
        "1",
    ])
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every file directly in `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(OsString, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name(), fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

fn epochs_logged(run: &Path) -> Vec<u64> {
    metrics_lines(&run.join("metrics.jsonl"))
        .iter()
        .filter(|l| l["phase"] == "val")
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect()
}

fn assert_one_line_error(out: &str) {
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn resuming_a_copy_of_a_run_writes_only_into_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 5);
    let runs = tmp.path().join("runs");
    let run = one_epoch(&cache, &runs, "orig", &[]);
    // A backup next to the original, as `cp -r` makes it.
    let copy = run.with_file_name("backup-of-orig");
    copy_dir(&run, &copy);
    let before = snapshot(&run);

    let (ok, out) = resume(&copy, &cache, "2");
    assert!(ok, "{out}");
    assert!(out.contains(&copy.display().to_string()), "{out}");
    assert!(
        snapshot(&run) == before,
        "resuming the copy changed the original run's files"
    );
    assert_eq!(epochs_logged(&run), [1]);
    assert_eq!(epochs_logged(&copy), [1, 2]);
}

#[test]
fn resuming_a_runs_best_checkpoint_continues_the_run_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 5);
    let runs = tmp.path().join("runs");
    let run = one_epoch(&cache, &runs, "best", &["--select", "loss"]);
    assert!(run.join("best/model.safetensors").is_file());

    let (ok, out) = resume(&run.join("best"), &cache, "2");
    assert!(ok, "{out}");
    assert!(out.contains("continuing that run"), "{out}");
    let nested: Vec<_> = fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.ends_with("best"))
        .collect();
    assert!(nested.is_empty(), "folders nested in the run: {nested:?}");
    assert!(fs::read_dir(run.join("best"))
        .unwrap()
        .all(|e| e.unwrap().path().is_file()));
    assert_eq!(epochs_logged(&run), [1, 2]);
}

#[test]
fn resuming_a_read_only_run_refuses_and_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 5);
    let runs = tmp.path().join("runs");
    let run = one_epoch(&cache, &runs, "ro", &[]);
    let group = runs.join("p2ch12");
    let listing = |dir: &Path| {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let (before, group_before) = (snapshot(&run), listing(&group));
    fs::set_permissions(&run, fs::Permissions::from_mode(0o555)).unwrap();
    let cwd = tmp.path().join("cwd");
    fs::create_dir(&cwd).unwrap();

    let out = Command::new(luna_e2e::train::bin())
        .current_dir(&cwd)
        .args(["--resume", s(&run), "--cache", s(&cache), "--epochs", "2"])
        .args(["--device", "cpu", "--threads", "1"])
        .output()
        .unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert_one_line_error(&text);
    assert!(
        text.contains("read-only") && text.contains(s(&run)),
        "{text}"
    );
    assert!(listing(&cwd).is_empty(), "wrote into the working directory");
    assert!(snapshot(&run) == before, "the read-only run changed");
    assert_eq!(listing(&group), group_before);
}

#[test]
fn a_run_folder_in_use_refuses_a_second_writer_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 5);
    let runs = tmp.path().join("runs");
    let run = one_epoch(&cache, &runs, "held", &[]);
    // This process holds it, as a running `train` does.
    let held = shared::lock::FolderLock::acquire(&run, "train run").unwrap();
    let before = snapshot(&run);
    let (ok, out) = resume(&run, &cache, "2");
    assert!(!ok, "{out}");
    assert_one_line_error(&out);
    assert!(out.contains(s(&run)), "{out}");
    assert!(out.contains(&std::process::id().to_string()), "{out}");
    assert!(
        snapshot(&run) == before,
        "the refused run wrote into the folder"
    );
    drop(held);
    let (ok, out) = resume(&run, &cache, "2");
    assert!(ok, "{out}");
    assert_eq!(epochs_logged(&run), [1, 2]);
}

#[test]
fn runs_started_together_with_one_comment_get_a_folder_each() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 5);
    let runs = tmp.path().join("runs");
    let mut args = tiny_run_args(&cache, &runs);
    args.push("twin".into());
    // Started at once: most likely within one second, so with one name.
    let started: Vec<_> = (0..3)
        .map(|_| {
            Command::new(luna_e2e::train::bin())
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starting train")
        })
        .collect();
    for child in started {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
    }
    let folders: Vec<PathBuf> = fs::read_dir(runs.join("p2ch12"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("-cls-twin"))
        .collect();
    assert_eq!(folders.len(), 3, "{folders:?}");
    for run in &folders {
        assert_eq!(epochs_logged(run), [1], "{}", run.display());
        assert!(run.join("model.safetensors").is_file());
    }
}
