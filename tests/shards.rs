//! Builds spread over many machines (issue 25): `prepcache build --shard
//! K/N` processes writing into one folder at the same time, one of them
//! killed with SIGKILL and rerun, then a plain build that seals, give the
//! same cache, byte for byte, as one build on one machine; shards never
//! seal, and a plain build is refused while a shard holds the folder.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use luna_e2e::prepcache::{bin, build, ok, prepcache, s, synth, text};
use shared::cache::format::{INDEX_FILE, MANIFEST_FILE};
use shared::cache::CacheReader;
use shared::lock::{FolderLock, LockMode, LOCK_FILE};

/// Every file under `root` by relative path, with its bytes, except the
/// lock files and the resume records (`shards/*.json`: they hold the inode
/// and ctime of their shard, which no two builds share), which appear by
/// name only.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().to_owned();
            if rel.file_name().is_some_and(|n| n == LOCK_FILE) {
                continue;
            }
            let in_shards = rel.parent().and_then(Path::file_name) == Some("shards".as_ref());
            let record = in_shards && rel.extension().is_some_and(|x| x == "json");
            let bytes = if record {
                Vec::new()
            } else {
                fs::read(&path).unwrap()
            };
            files.insert(rel, bytes);
        }
    }
    files
}

fn assert_same_tree(sharded: &Path, single: &Path) {
    let (a, b) = (tree(sharded), tree(single));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the two folders hold different files"
    );
    for (rel, bytes) in &a {
        assert!(bytes == &b[rel], "{} differs", rel.display());
    }
}

fn spawn_shard(data: &Path, out: &Path, shard: &str, extra: &[&str]) -> Child {
    Command::new(bin())
        .args(["build", "--data", s(data), "--out", s(out)])
        .args(["--threads", "1", "--shard", shard])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `(built now, reused)` from a shard's or a build's report.
fn built_and_reused(out: &str) -> (usize, usize) {
    let after = out
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(" built now, "))
        .unwrap_or_else(|| panic!("no counts in:\n{out}"));
    let built = after.0.parse().unwrap();
    let reused = after.1.split(' ').next().unwrap().parse().unwrap();
    (built, reused)
}

/// The scans a shard says are its own, of how many.
fn share_of(out: &str) -> (usize, usize) {
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "of").unwrap();
    (
        words[at - 1].parse().unwrap(),
        words[at + 2].parse().unwrap(),
    )
}

fn sidecars(cache: &Path) -> usize {
    fs::read_dir(cache.join("shards")).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

#[test]
fn three_concurrent_shards_then_a_plain_build_equal_one_build_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 9, 41);
    let single = tmp.path().join("single");
    build(&data, &single, &[]);
    let shared_out = tmp.path().join("shared");

    let children: Vec<Child> = ["1/3", "2/3", "3/3"]
        .iter()
        .map(|k| spawn_shard(&data, &shared_out, k, &[]))
        .collect();
    let mut mine = 0;
    for (k, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "shard {}: {stdout}\n{stderr}", k + 1);
        assert!(
            stdout.contains(&format!("shard {}/3 done", k + 1)),
            "{stdout}"
        );
        assert!(stdout.contains("not sealed"), "{stdout}");
        let (own, all) = share_of(&stdout);
        assert_eq!(all, 9, "{stdout}");
        assert_eq!(built_and_reused(&stdout), (own, 0), "{stdout}");
        mine += own;
    }
    assert_eq!(mine, 9, "every scan belongs to exactly one shard");
    // Shards never seal: the folder does not read as a cache yet.
    for sealed in [MANIFEST_FILE, INDEX_FILE, "skipped.csv"] {
        assert!(
            !shared_out.join(sealed).exists(),
            "{sealed} written by a shard"
        );
    }
    let err = CacheReader::open(&shared_out).err().expect("not sealed");
    let err = err.to_string();
    assert!(
        err.contains("incomplete") && err.contains("without --shard"),
        "{err}"
    );

    let sealed = build(&data, &shared_out, &[]);
    assert_eq!(built_and_reused(&sealed), (0, 9), "{sealed}");
    assert!(sealed.contains("cache complete"), "{sealed}");
    assert_same_tree(&shared_out, &single);
    ok(&["verify", s(&shared_out)]);
    // Sealed and unchanged: a shard finds its share done, writes nothing.
    let again = ok(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&shared_out),
        "--shard",
        "2/3",
    ]);
    assert_eq!(built_and_reused(&again).0, 0, "{again}");
    assert_same_tree(&shared_out, &single);
}

#[test]
fn a_plain_build_is_refused_while_a_shard_holds_the_folder_but_shards_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 43);
    let out = tmp.path().join("cache");
    fs::create_dir_all(&out).unwrap();
    let held =
        FolderLock::acquire_as(&out, "prepcache build --shard 1/2", LockMode::Shared).unwrap();
    let build_in = |shard: Option<&str>| {
        let mut args = vec!["build", "--data", s(&data), "--out", s(&out)];
        args.extend(shard.map(|k| ["--shard", k]).into_iter().flatten());
        prepcache(&args)
    };
    let refused = build_in(None);
    let (_, stderr) = text(&refused);
    assert!(!refused.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("in use by another prepcache build --shard 1/2 (PID "),
        "{stderr}"
    );
    let (beside, _) = text(&build_in(Some("2/2")));
    assert!(beside.contains("shard 2/2 done"), "{beside}");
    drop(held);

    // And a shard waits for nobody but is refused beside a plain build.
    let sole = FolderLock::acquire(&out, "prepcache build").unwrap();
    let (_, stderr) = text(&build_in(Some("1/2")));
    assert!(
        stderr.contains("in use by another prepcache build (PID "),
        "{stderr}"
    );
    drop(sole);

    let bad = build_in(Some("3/2"));
    let (_, stderr) = text(&bad);
    assert!(
        !bad.status.success() && stderr.contains("expected K/N"),
        "{stderr}"
    );
}

#[test]
fn a_shard_killed_with_sigkill_and_rerun_then_sealed_equals_one_build() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 8, 44);
    // A high level keeps each scan slow enough to kill a shard between two.
    let slow = ["--level", "12"];
    let single = tmp.path().join("single");
    build(&data, &single, &slow);
    let out = tmp.path().join("shared");

    let mut victim = spawn_shard(&data, &out, "1/2", &slow);
    let other = spawn_shard(&data, &out, "2/2", &slow);
    let start = Instant::now();
    while sidecars(&out) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no scan finished"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    victim.kill().unwrap();
    assert!(!victim.wait().unwrap().success());
    let done = other.wait_with_output().unwrap();
    assert!(done.status.success(), "{:?}", text(&done));
    assert!(!out.join(MANIFEST_FILE).exists());

    let rerun = ok(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--threads",
        "1",
        "--shard",
        "1/2",
        slow[0],
        slow[1],
    ]);
    let (own, _) = share_of(&rerun);
    let (built, reused) = built_and_reused(&rerun);
    assert_eq!(built + reused, own, "{rerun}");
    assert!(
        built >= 1,
        "the kill came after shard 1/2 was done:\n{rerun}"
    );
    let sealed = build(&data, &out, &slow);
    assert_eq!(built_and_reused(&sealed), (0, 8), "{sealed}");
    assert_same_tree(&out, &single);
    let leftovers = luna_e2e::prepcache::temporaries(&out);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn segmentation_cache_shards_then_a_plain_run_equal_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 6, 45);
    let seg = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "seg",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--val-stride",
            "3",
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let single = tmp.path().join("single");
    seg(&single, &[]);
    let out = tmp.path().join("shared");
    let mut mine = 0;
    for k in ["1/2", "2/2"] {
        let report = seg(&out, &["--shard", k]);
        assert!(report.contains(&format!("shard {k} done")), "{report}");
        mine += share_of(&report).0;
    }
    assert_eq!(mine, 6);
    for sub in ["seg-train", "seg-val"] {
        assert!(
            !out.join(sub).join(MANIFEST_FILE).exists(),
            "{sub} sealed by a shard"
        );
    }
    let sealed = seg(&out, &[]);
    assert!(!sealed.contains("up to date"), "{sealed}");
    assert_same_tree(&out, &single);
    ok(&["verify", s(&out)]);
}

/// examples/slurm/prepcache_array.sh end to end, with a stand-in `sbatch`
/// that runs each job at once in the foreground: the array's tasks side by
/// side (SLURM_ARRAY_TASK_ID/COUNT set as Slurm sets them), then the
/// sealing job. The cache equals one build's, byte for byte.
#[test]
fn the_slurm_array_script_builds_the_same_cache_as_one_build() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 5, 46);
    let single = tmp.path().join("single");
    build(&data, &single, &[]);
    let bin_dir = tmp.path().join("bin");
    fs::create_dir_all(&bin_dir).unwrap();
    let sbatch = bin_dir.join("sbatch");
    fs::write(&sbatch, SBATCH_STAND_IN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&sbatch, fs::Permissions::from_mode(0o755)).unwrap();

    let out = tmp.path().join("shared");
    let log = tmp.path().join("sbatch.log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/slurm/prepcache_array.sh");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new("bash")
        .arg(&script)
        .args(["submit", "3", s(&data), s(&out)])
        .env("PATH", path)
        .env("PREPCACHE", bin())
        .env("SBATCH_LOG", &log)
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("submitted array job 41 (3 shards) and sealing job 42"),
        "{stdout}"
    );
    let jobs = fs::read_to_string(&log).unwrap();
    let jobs: Vec<&str> = jobs.lines().collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(
        jobs[0].starts_with("--array=0-2 ") && jobs[0].contains(" shard "),
        "{jobs:?}"
    );
    assert!(
        jobs[1].contains("--dependency=afterany:41 ") && jobs[1].contains(" seal "),
        "{jobs:?}"
    );
    let output = fs::read_to_string(log.with_extension("out")).unwrap();
    for k in 1..=3 {
        assert!(output.contains(&format!("shard {k}/3 done")), "{output}");
    }
    assert!(output.contains("cache complete"), "{output}");
    assert_same_tree(&out, &single);
}

/// `sbatch --parsable [--array=0-M] [options] SCRIPT ARGS…`, run at once:
/// logs its options and arguments, runs an array's tasks in parallel and
/// prints job id 41 for it, 42 for a plain job.
const SBATCH_STAND_IN: &str = r#"#!/usr/bin/env bash
opts=() array=""
while [[ $1 == -* ]]; do
    [[ $1 == --array=* ]] && array="${1#--array=}"
    opts+=("$1"); shift
done
echo "${opts[*]} $*" | sed 's/^--parsable //' >> "$SBATCH_LOG"
out="${SBATCH_LOG%.log}.out"
if [[ -n $array ]]; then
    count=$(( ${array#0-} + 1 ))
    for ((i = 0; i < count; i++)); do
        SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=$count bash "$@" >> "$out.$i" 2>&1 &
    done
    wait
    cat "$out".* >> "$out"
    echo 41
else
    bash "$@" >> "$out" 2>&1
    echo 42
fi
"#;
