//! The cache folder as `prepcache build` leaves it (issue #21 items 3, 6, 7,
//! 10, 12): one build at a time, resume records that are checked against
//! their shards, nothing foreign removed, the old cache readable until the
//! new one is sealed, and a manifest or index that cannot be edited or
//! inflated into a misread or an abort.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use luna_e2e::prepcache::*;
use shared::cache::format::{index_fingerprint, INDEX_FILE, MANIFEST_FILE};
use shared::cache::{CacheReader, Manifest};

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Names of the shard files (`*.zst`) in `cache/shards`.
fn shard_files(cache: &Path) -> BTreeSet<String> {
    fs::read_dir(cache.join("shards"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zst"))
        .collect()
}

/// A shard not in `old` that its scan's resume record names: a scan the
/// running build has finished.
fn first_rebuilt_scan(cache: &Path, old: &BTreeSet<String>) -> bool {
    shard_files(cache).difference(old).any(|name| {
        // <uid>.<content hash>.zst
        let uid = name.rsplitn(3, '.').nth(2).unwrap_or_default();
        fs::read_to_string(cache.join("shards").join(format!("{uid}.json")))
            .is_ok_and(|record| record.contains(name.as_str()))
    })
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {sig} {pid}");
}

fn verify_ok(cache: &Path) {
    ok(&["verify", s(cache)]);
}

#[test]
fn a_second_build_into_a_busy_folder_refuses_naming_the_first_and_the_old_cache_stays_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 31);
    let cache = tmp.path().join("cache");
    build(&data, &cache, &[]);
    let old_shards = shard_files(&cache);

    // A rebuild with another level rewrites every shard; hold it still
    // (SIGSTOP keeps its lock) once it has written its first new shard.
    let mut first = Command::new(bin())
        .args(["build", "--data", s(&data), "--out", s(&cache)])
        .args(["--threads", "1", "--level", "9"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first rebuilt scan", || {
        first_rebuilt_scan(&cache, &old_shards)
    });
    signal(first.id(), "STOP");

    let second = prepcache(&["build", "--data", s(&data), "--out", s(&cache)]);
    let (_, stderr) = text(&second);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("PID {}", first.id())) && stderr.contains("in use"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // Mid-rebuild, the cache that was there still reads and verifies.
    verify_ok(&cache);

    signal(first.id(), "KILL");
    first.wait().unwrap();
    verify_ok(&cache);
    assert_eq!(
        CacheReader::open(&cache).unwrap().manifest().codec.level,
        -1
    );

    let out = build(&data, &cache, &["--level", "9"]);
    assert!(!out.contains(" 0 reused"), "{out}");
    verify_ok(&cache);
    let reader = CacheReader::open(&cache).unwrap();
    assert_eq!(reader.manifest().codec.level, 9);
    // The shards of the level -1 cache are gone once nothing names them.
    let named: BTreeSet<String> = reader
        .shards()
        .iter()
        .map(|sh| sh.path.trim_start_matches("shards/").to_owned())
        .collect();
    assert_eq!(shard_files(&cache), named);
}

#[test]
fn a_shard_changed_after_the_build_is_rebuilt_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 32);
    let cache = tmp.path().join("cache");
    build(&data, &cache, &[]);
    let (shard, at) = {
        let reader = CacheReader::open(&cache).unwrap();
        let e = reader.entries()[7];
        (
            cache.join(&reader.shards()[e.shard as usize].path),
            e.offset as usize + e.length as usize / 2,
        )
    };
    let mut bytes = fs::read(&shard).unwrap();
    bytes[at] ^= 0x10;
    fs::write(&shard, bytes).unwrap();

    let out = build(&data, &cache, &[]);
    assert!(out.contains("(1 built now, 2 reused"), "{out}");
    verify_ok(&cache);
}

#[test]
fn a_shard_replaced_by_an_identical_copy_is_byte_checked_and_still_reused() {
    // The record's stamp lets an untouched shard go unread; a shard whose
    // stamp changed (here: a copy moved over it, a new inode) is read and
    // trusted only because its bytes are still the ones recorded.
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2, 34);
    let cache = tmp.path().join("cache");
    build(&data, &cache, &[]);
    let reader = CacheReader::open(&cache).unwrap();
    let shard = cache.join(&reader.shards()[0].path);
    drop(reader);
    let records = fs::read_dir(cache.join("shards"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .collect::<Vec<_>>();
    assert!(
        !records.is_empty() && records.iter().all(|r| r.contains("\"stamp\"")),
        "{records:?}"
    );
    let copy = tmp.path().join("copy.zst");
    fs::copy(&shard, &copy).unwrap();
    fs::rename(&copy, &shard).unwrap();
    let out = build(&data, &cache, &[]);
    assert!(out.contains("up to date"), "{out}");
    verify_ok(&cache);
}

#[test]
fn foreign_files_survive_a_build_and_a_folder_that_is_no_cache_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2, 33);
    let cache = tmp.path().join("cache");
    build(&data, &cache, &[]);
    let foreign = [
        cache.join("shards/important.txt"),
        cache.join("shards/notes.json"),
        cache.join("shards/archive.zst"),
        cache.join("important.txt"),
    ];
    for f in &foreign {
        fs::write(f, b"keep me").unwrap();
    }
    // Another level: every shard is rebuilt and the old ones are removed.
    build(&data, &cache, &["--level", "2"]);
    for f in &foreign {
        assert_eq!(fs::read(f).unwrap(), b"keep me", "{}", f.display());
    }
    verify_ok(&cache);

    let folder = tmp.path().join("documents");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("important.txt"), b"keep me").unwrap();
    let out = prepcache(&["build", "--data", s(&data), "--out", s(&folder)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not a cache") && stderr.contains("documents"),
        "{stderr}"
    );
    let left: Vec<_> = fs::read_dir(&folder).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(fs::read(folder.join("important.txt")).unwrap(), b"keep me");
}

#[test]
fn a_rebuild_that_fails_midway_leaves_the_old_cache_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 34);
    let cache = tmp.path().join("cache");
    build(&data, &cache, &[]);
    let manifest = fs::read(cache.join(MANIFEST_FILE)).unwrap();

    // One scan becomes unreadable; with --strict the rebuild (at another
    // level, so every shard is rewritten) stops when it meets it.
    let (_, mhd) = &scans(&data)[1];
    let raw = mhd.with_extension("raw");
    let len = fs::metadata(&raw).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&raw).unwrap();
    f.set_len(len / 2).unwrap();
    let out = prepcache(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&cache),
        "--level",
        "3",
        "--strict",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert_eq!(fs::read(cache.join(MANIFEST_FILE)).unwrap(), manifest);
    verify_ok(&cache);
    let reader = CacheReader::open(&cache).unwrap();
    assert_eq!(reader.manifest().codec.level, -1);
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes}"),
                "tmpfs",
                s(dir),
            ])
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn tree_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                tree_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[test]
fn a_rebuild_that_fills_the_disk_leaves_the_old_cache_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 35);
    let sized = tmp.path().join("sized");
    build(&data, &sized, &[]);
    // Room for the cache and half of a second one: a rebuild that rewrites
    // every shard runs out of space midway.
    let size = tree_bytes(&sized) * 3 / 2;
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), size) else {
        return;
    };
    let cache = disk.0.join("cache");
    build(&data, &cache, &[]);
    let out = prepcache(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&cache),
        "--filter",
        "none",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left"), "{stderr}");
    verify_ok(&cache);
    let reader = CacheReader::open(&cache).unwrap();
    assert_eq!(
        reader.manifest().codec.filter,
        shared::cache::Filter::ByteShuffle
    );
}

/// Rewrite `cache`'s manifest through `edit`, leaving `header_checksum` as
/// the build wrote it.
fn edit_manifest(cache: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = cache.join(MANIFEST_FILE);
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut json);
    fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// A change to a parsed manifest.
type Edit = fn(&mut serde_json::Value);

#[test]
fn an_edited_decode_field_is_refused_by_verify_every_reader_and_train() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 36);
    let manifest = fs::read(cache.join(MANIFEST_FILE)).unwrap();
    let edits: [(&str, Edit); 6] = [
        ("filter", |m| m["codec"]["filter"] = "none".into()),
        ("level", |m| m["codec"]["level"] = 3.into()),
        ("crop_shape", |m| {
            m["crop_shape"] = serde_json::json!([32, 48, 47])
        }),
        ("clip_hu", |m| {
            m["clip_hu"] = serde_json::json!([-1000, 999])
        }),
        ("dtype", |m| m["dtype"] = "uint16".into()),
        ("fingerprint", |m| {
            m["fingerprint"] = index_fingerprint(b"another index").into()
        }),
    ];
    for (field, edit) in edits {
        edit_manifest(&cache, edit);
        let out = prepcache(&["verify", s(&cache)]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{field}: {stderr}");
        assert!(stderr.contains("manifest.json"), "{field}: {stderr}");
        let err = CacheReader::open(&cache).err();
        assert!(err.is_some(), "{field}: the reader opened an edited cache");
        fs::write(cache.join(MANIFEST_FILE), &manifest).unwrap();
    }

    edit_manifest(&cache, |m| m["codec"]["filter"] = "none".into());
    let py = Command::new(luna_e2e::python::python())
        .arg(luna_e2e::python::scripts_dir().join("lunacache.py"))
        .arg(&cache)
        .output()
        .unwrap();
    let py_err = String::from_utf8_lossy(&py.stderr);
    assert!(
        !py.status.success() && py_err.contains("header_checksum"),
        "{py_err}"
    );
    let runs = tmp.path().join("runs");
    let (trained, log) = luna_e2e::train::train_output(&[
        "--cache",
        s(&cache),
        "--runs",
        s(&runs),
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--epoch-samples",
        "16",
        "--val-samples",
        "16",
        "--batch-size",
        "8",
        "edited",
    ]);
    assert!(!trained && log.contains("header_checksum"), "{log}");
}

/// Store `manifest` with its checksums made to agree with `index`, so the
/// reader gets past them to the sizes.
fn forge(cache: &Path, index: &[u8], edit: impl FnOnce(&mut Manifest)) {
    let mut m = CacheReader::open(cache).unwrap().manifest().clone();
    fs::write(cache.join(INDEX_FILE), index).unwrap();
    m.fingerprint = index_fingerprint(index);
    m.index_bytes = index.len() as u64;
    edit(&mut m);
    m.header_checksum = Some(m.computed_header_checksum());
    shared::cache::writer::write_manifest(cache, &m).unwrap();
}

fn refused_in_one_line(cache: &Path, file: &str, field: &str) {
    for cmd in ["verify", "info"] {
        let out = prepcache(&[cmd, s(cache)]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(file) && first.contains(field),
            "{cmd}: {stderr}"
        );
        assert!(!stderr.contains("memory allocation"), "{cmd}: {stderr}");
    }
}

#[test]
fn absurd_counts_and_shapes_are_one_line_errors_not_aborts() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 37);
    let index = fs::read(cache.join(INDEX_FILE)).unwrap();
    let manifest = fs::read(cache.join(MANIFEST_FILE)).unwrap();

    // The series count right after magic and version.
    let mut crafted = index.clone();
    crafted[12..20].copy_from_slice(&(1u64 << 60).to_le_bytes());
    forge(&cache, &crafted, |_| {});
    refused_in_one_line(&cache, "index.bin", "series count");

    fs::write(cache.join(MANIFEST_FILE), &manifest).unwrap();
    fs::write(cache.join(INDEX_FILE), &index).unwrap();
    forge(&cache, &index, |m| {
        m.crop_shape = [100_000; 3];
        m.raw_bytes = 0;
    });
    refused_in_one_line(&cache, "manifest.json", "crop_shape");
}
