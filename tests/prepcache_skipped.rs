//! `prepcache build`'s list of the CSV rows it did not cache (skipped.csv),
//! `--strict`, and building from the organisers' candidates_V2.csv.

use std::fs;
use std::path::Path;

use luna_e2e::prepcache::*;
use shared::cache::format::{MANIFEST_FILE, SKIPPED_FILE};
use shared::cache::CacheReader;

const HEADER: &str = "seriesuid,csv,line,reason";

/// One row of skipped.csv.
#[derive(Debug, PartialEq)]
struct SkippedRow {
    uid: String,
    csv: String,
    line: u64,
    reason: String,
}

/// The rows of `CACHE/skipped.csv`. The first three fields never need
/// quotes here (uids, temp paths, numbers); the reason may be quoted.
fn skipped(cache: &Path) -> Vec<SkippedRow> {
    let text = fs::read_to_string(cache.join(SKIPPED_FILE)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER), "{text}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            assert_eq!(f.len(), 4, "{l}");
            let reason = match f[3].strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => f[3].to_owned(),
            };
            SkippedRow {
                uid: f[0].to_owned(),
                csv: f[1].to_owned(),
                line: f[2].parse().unwrap(),
                reason,
            }
        })
        .collect()
}

/// Editor line numbers (header = 1) of the rows of `csv_text` naming `uid`.
fn lines_of(csv_text: &str, uid: &str) -> Vec<u64> {
    csv_text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.split(',').next() == Some(uid))
        .map(|(k, _)| k as u64 + 1)
        .collect()
}

fn build_fails(args: &[&str]) -> String {
    let out = prepcache(args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn skipped_csv_lists_every_row_left_out_with_its_line_and_strict_names_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 4, 21);
    let scans = scans(&data);
    let (gone, cut, outside) = (&scans[0].0, &scans[1].0, &scans[2].0);
    fs::remove_file(&scans[0].1).unwrap();
    let raw = scans[1].1.with_extension("raw");
    let len = fs::metadata(&raw).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    // CRLF line ends, a blank line and two centres far outside every
    // volume: the lines reported must still be the editor's.
    let csv = data.join("candidates.csv");
    let original = fs::read_to_string(&csv).unwrap();
    let text =
        format!("{original}\n{outside},10000,10000,10000,0\n{outside},-10000,5000,10000,1\n");
    fs::write(&csv, text.replace('\n', "\r\n")).unwrap();

    // --strict stops at the scan not on disk before anything is written.
    let cache = tmp.path().join("cache");
    let cache_arg = s(&cache);
    let strict = ["build", "--data", s(&data), "--out", cache_arg, "--strict"];
    let first_gone = lines_of(&text, gone)[0];
    let err = build_fails(&strict);
    assert!(
        err.contains(&format!("{} line {first_gone}: ", csv.display()))
            && err.contains(gone.as_str())
            && err.contains("not on disk"),
        "{err}"
    );
    assert!(!cache.exists(), "--strict wrote to the cache");

    let out = build(&data, &cache, &[]);
    let rows = skipped(&cache);
    let mut want: Vec<(u64, &str, &str)> = Vec::new();
    want.extend(
        lines_of(&text, gone)
            .into_iter()
            .map(|l| (l, gone.as_str(), "not found on disk")),
    );
    want.extend(
        lines_of(&text, cut)
            .into_iter()
            .map(|l| (l, cut.as_str(), "truncated")),
    );
    let n = text.lines().count() as u64;
    want.extend([
        (n - 1, outside.as_str(), "outside the volume"),
        (n, outside.as_str(), "outside the volume"),
    ]);
    want.sort();
    assert_eq!(rows.len(), want.len(), "{rows:#?}");
    for (row, (line, uid, reason)) in rows.iter().zip(&want) {
        assert_eq!((row.line, row.uid.as_str()), (*line, *uid), "{row:?}");
        assert!(row.reason.contains(reason), "{row:?}");
        assert_eq!(row.csv, s(&csv));
    }
    let manifest = CacheReader::open(&cache).unwrap().manifest().clone();
    assert_eq!(manifest.missing_candidates, lines_of(&text, gone).len());
    // The count, the file and the first five rows end the output.
    assert!(
        out.contains(&format!(
            "not cached  {} row(s) of {}, all listed in {}; the first 5:",
            want.len(),
            csv.display(),
            cache.join(SKIPPED_FILE).display()
        )),
        "{out}"
    );
    let shown: Vec<&str> = out.lines().filter(|l| l.starts_with("    line ")).collect();
    assert_eq!(shown.len(), 5, "{out}");
    assert!(shown[0].starts_with(&format!("    line {}: {}: ", want[0].0, want[0].1)));

    // A complete cache with rows left out still fails --strict, untouched.
    let manifest_bytes = fs::read(cache.join(MANIFEST_FILE)).unwrap();
    let err = build_fails(&strict);
    assert!(err.contains(&format!("line {first_gone}: ")), "{err}");
    assert_eq!(fs::read(cache.join(MANIFEST_FILE)).unwrap(), manifest_bytes);

    // Without the missing scan's rows, --strict stops at the unusable scan,
    // named by its first line in the CSV it was given.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let uid = l.split(',').next();
            uid != Some(gone.as_str()) && (uid != Some(outside.as_str()) || !l.contains(",10000,"))
        })
        .collect();
    let filtered_text = kept.join("\n") + "\n";
    let filtered = tmp.path().join("filtered.csv");
    fs::write(&filtered, &filtered_text).unwrap();
    let cache2 = tmp.path().join("cache2");
    let strict2 = [
        "build",
        "--data",
        s(&data),
        "--out",
        s(&cache2),
        "--candidates",
        s(&filtered),
        "--strict",
        "--threads",
        "2",
    ];
    let first_cut = lines_of(&filtered_text, cut)[0];
    let expected = format!(
        "{} line {first_cut}: candidate of series {cut}",
        filtered.display()
    );
    let err = build_fails(&strict2);
    assert!(
        err.contains(&expected) && err.contains("truncated"),
        "{err}"
    );
    assert!(
        CacheReader::open(&cache2).is_err(),
        "--strict must leave the cache incomplete"
    );
    // Its record is kept: the rerun fails the same way without reading it again.
    let err = build_fails(&strict2);
    assert!(err.contains(&expected), "{err}");
    build(&data, &cache2, &["--candidates", s(&filtered)]);
    let rows = skipped(&cache2);
    assert_eq!(rows.len(), lines_of(&filtered_text, cut).len());
    assert!(rows.iter().all(|r| r.uid == *cut && r.csv == s(&filtered)));

    // The same rows under another name: nothing to rebuild, but the list
    // names the CSV that was given.
    let renamed = tmp.path().join("renamed.csv");
    fs::copy(&filtered, &renamed).unwrap();
    let again = build(&data, &cache2, &["--candidates", s(&renamed)]);
    assert!(again.contains("up to date"), "{again}");
    assert!(skipped(&cache2).iter().all(|r| r.csv == s(&renamed)));
    ok(&["verify", s(&cache2)]);
}

#[test]
fn candidates_v2_is_used_when_candidates_csv_is_absent_and_every_row_is_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 22);
    let v1 = data.join("candidates.csv");
    let original = fs::read_to_string(&v1).unwrap();
    let v1_rows = original.lines().count() - 1;
    // V2 format: the same columns, more rows (here every candidate again,
    // moved by 0.01 mm, which keeps it inside its volume).
    let mut v2 = original.clone();
    for l in original.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let x: f64 = f[1].parse().unwrap();
        v2.push_str(&format!(
            "{},{:.2},{},{},{}\n",
            f[0],
            x + 0.01,
            f[2],
            f[3],
            f[4]
        ));
    }
    let v2_rows = 2 * v1_rows;

    // As distributed (candidates_V2/candidates_V2.csv), without candidates.csv.
    fs::remove_file(&v1).unwrap();
    fs::create_dir(data.join("candidates_V2")).unwrap();
    let nested = data.join("candidates_V2/candidates_V2.csv");
    fs::write(&nested, &v2).unwrap();
    let cache = tmp.path().join("cache");
    let out = build(&data, &cache, &[]);
    assert!(
        out.contains(&format!(
            "candidates: {} (there is no candidates.csv)",
            nested.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("csv         {v2_rows} rows of ")),
        "{out}"
    );
    assert_eq!(CacheReader::open(&cache).unwrap().len(), v2_rows);
    // Nothing left out: the list is the header alone.
    assert_eq!(
        fs::read_to_string(cache.join(SKIPPED_FILE)).unwrap(),
        format!("{HEADER}\n")
    );
    assert!(out.contains("not cached  0 rows of "), "{out}");
    ok(&["verify", s(&cache)]);

    // Loose in the data folder, it is found too; candidates.csv, where
    // present, wins; --candidates picks either.
    fs::remove_dir_all(data.join("candidates_V2")).unwrap();
    fs::write(data.join("candidates_V2.csv"), &v2).unwrap();
    let again = build(&data, &cache, &[]);
    assert!(again.contains("up to date"), "{again}");
    fs::write(&v1, &original).unwrap();
    build(&data, &cache, &[]);
    assert_eq!(CacheReader::open(&cache).unwrap().len(), v1_rows);
    let v2_path = data.join("candidates_V2.csv");
    build(&data, &cache, &["--candidates", s(&v2_path)]);
    assert_eq!(CacheReader::open(&cache).unwrap().len(), v2_rows);

    // No candidates CSV at all: an error naming the folder and the names tried.
    fs::remove_file(&v1).unwrap();
    fs::remove_file(&v2_path).unwrap();
    let err = build_fails(&["build", "--data", s(&data), "--out", s(&cache)]);
    assert!(
        err.contains(&format!("no candidates CSV in {}", data.display()))
            && err.contains("candidates_V2.csv"),
        "{err}"
    );
}

#[test]
fn a_scan_with_more_candidates_than_one_write_batch_is_stored_whole_and_in_order() {
    // prepcache writes a scan's frames 1,024 candidates at a time; a V2-style
    // list with thousands of candidates on one scan crosses several batches.
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 1, 5);
    let v1 = data.join("candidates.csv");
    let original = fs::read_to_string(&v1).unwrap();
    let mut v2 = original.lines().next().unwrap().to_owned() + "\n";
    for copy in 0..40 {
        for l in original.lines().skip(1) {
            let f: Vec<&str> = l.split(',').collect();
            let x: f64 = f[1].parse().unwrap();
            let x = x + 0.01 * f64::from(copy);
            v2.push_str(&format!("{},{x:.2},{},{},{}\n", f[0], f[2], f[3], f[4]));
        }
    }
    fs::remove_file(&v1).unwrap();
    fs::write(data.join("candidates_V2.csv"), &v2).unwrap();
    let cache = tmp.path().join("cache");
    build(&data, &cache, &[]);
    let reader = CacheReader::open(&cache).unwrap();
    assert_eq!(reader.len(), v2.lines().count() - 1);
    assert!(reader.len() > 2500, "{} candidates", reader.len());

    // Every stored chunk is the crop of its own centre.
    let mhd = fs::read_dir(data.join("subset0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "mhd"))
        .unwrap();
    let scan = shared::metaimage::open_scan(&mhd).unwrap();
    let mut dec = reader.decoder();
    let (mut stored, mut fresh) = (
        vec![0i16; reader.chunk_voxels()],
        vec![0i16; reader.chunk_voxels()],
    );
    for (i, e) in reader.entries().iter().enumerate() {
        reader.read_chunk(&mut dec, i, &mut stored).unwrap();
        shared::crop::crop_candidate(&scan, e.center_irc.map(i64::from), &mut fresh).unwrap();
        assert!(stored == fresh, "candidate {i} at {:?}", e.center_irc);
    }
}

/// Replace the `key = …` line of a header (or add it before ElementDataFile).
fn set_header_key(mhd: &Path, key: &str, value: &str) {
    let text = fs::read_to_string(mhd).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} =")))
        .map(str::to_owned)
        .collect();
    let at = lines.len() - 1; // ElementDataFile stays last
    lines.insert(at, format!("{key} = {value}"));
    fs::write(mhd, lines.join("\n") + "\n").unwrap();
}

#[test]
fn scans_with_absurd_geometry_or_a_dangling_link_are_skipped_and_named_the_rest_built() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 6, 31);
    let scans = scans(&data);
    let bad: [(&str, &str, &str); 4] = [
        ("Offset", "nan nan nan", "Offset [NaN, NaN, NaN] holds NaN"),
        ("Offset", "0 inf 0", "holds inf"),
        (
            "ElementSpacing",
            "1e308 1e308 1e308",
            "implausible CT geometry: spacing",
        ),
        ("TransformMatrix", "1 0 0 1 0 0 0 0 1", "is singular"),
    ];
    for ((key, value, _), (_, mhd)) in bad.iter().zip(&scans) {
        set_header_key(mhd, key, value);
    }
    // The fifth scan's header becomes a link to a file that is gone.
    let (dangling_uid, dangling) = &scans[4];
    fs::remove_file(dangling).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("unmounted/scan.mhd"), dangling).unwrap();

    let cache = tmp.path().join("cache");
    let out = build(&data, &cache, &[]);
    let rows = skipped(&cache);
    let csv_text = fs::read_to_string(data.join("candidates.csv")).unwrap();
    let mut reasons: Vec<(&str, &str)> = bad
        .iter()
        .zip(&scans)
        .map(|((_, _, reason), (uid, _))| (uid.as_str(), *reason))
        .collect();
    reasons.push((dangling_uid.as_str(), "is a dangling symbolic link"));
    for (uid, reason) in &reasons {
        let lines = lines_of(&csv_text, uid);
        let named: Vec<&SkippedRow> = rows.iter().filter(|r| r.uid == *uid).collect();
        assert_eq!(named.len(), lines.len(), "{uid}: {rows:#?}");
        assert!(
            named.iter().all(|r| r.reason.contains(reason)),
            "{uid}: expected {reason:?} in {named:#?}"
        );
        assert!(
            out.contains(&format!("unusable scan {uid}: ")),
            "{uid} missing from the summary:\n{out}"
        );
    }
    assert_eq!(
        rows.len(),
        reasons
            .iter()
            .map(|(u, _)| lines_of(&csv_text, u).len())
            .sum::<usize>()
    );
    // The one good scan is built, every candidate of it stored.
    let good = &scans[5].0;
    let reader = CacheReader::open(&cache).unwrap();
    assert_eq!(reader.len(), lines_of(&csv_text, good).len());
    assert!(reader
        .entries()
        .iter()
        .all(|e| reader.series_uid(e.series) == good));
    ok(&["verify", s(&cache)]);
}

#[test]
fn duplicate_candidate_rows_are_stored_once_with_a_warning_naming_count_and_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2, 32);
    let csv = data.join("candidates.csv");
    let original = fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = original.lines().collect();
    let n = rows.len() as u64; // lines, the header included
                               // Lines 2 and 3 again, then line 2 a third time.
    let doubled = format!("{original}{}\n{}\n{}\n", rows[1], rows[2], rows[1]);
    fs::write(&csv, &doubled).unwrap();
    let cache = tmp.path().join("cache");
    let out = prepcache(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&cache),
        "--threads",
        "2",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let warning = format!("warning: {}: 3 duplicate candidate row(s)", csv.display());
    let lines = format!(
        "line {} (= line 2), line {} (= line 3), line {} (= line 2)",
        n + 1,
        n + 2,
        n + 3
    );
    assert!(
        stderr.contains(&warning) && stderr.contains(&lines),
        "{stderr}"
    );
    // Each candidate once: `prepcache ls` lists the original rows.
    let listed = ok(&["ls", s(&cache)]);
    assert_eq!(listed.lines().count() - 1, rows.len() - 1, "{listed}");
    assert_eq!(CacheReader::open(&cache).unwrap().len(), rows.len() - 1);
}

/// Run prepcache and fail the test if it has not exited within `secs`.
fn prepcache_within(args: &[&str], secs: u64) -> std::process::Output {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("prepcache {args:?} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn inspect_refuses_a_fifo_and_a_sparse_terabyte_raw_at_once_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mkfifo = |p: &Path| {
        let made = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", p.display());
    };
    let fifo = dir.join("pipe.mhd");
    mkfifo(&fifo);
    mkfifo(&dir.join("pipe.raw"));
    let via_fifo_raw = dir.join("reads_pipe.mhd");
    fs::write(
        &via_fifo_raw,
        "NDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\nElementDataFile = pipe.raw\n",
    )
    .unwrap();
    // 1100 GiB of holes, exactly what DimSize says (32768 × 32768 × 550 × 2 B).
    let sparse = dir.join("sparse.mhd");
    fs::write(
        &sparse,
        "NDims = 3\nDimSize = 32768 32768 550\nElementType = MET_SHORT\nElementDataFile = sparse.raw\n",
    )
    .unwrap();
    fs::File::create(dir.join("sparse.raw"))
        .unwrap()
        .set_len(1100 << 30)
        .unwrap();
    let cases = [
        (&fifo, "is a FIFO (named pipe), not a regular file"),
        (&via_fifo_raw, "data file"),
        (&sparse, "over the 32 GiB this reader decodes at once"),
    ];
    for (file, needle) in cases {
        let out = prepcache_within(&["inspect", s(file)], 10);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(s(file)) && stderr.contains(needle),
            "expected {needle:?}: {stderr}"
        );
    }
}

#[test]
fn synthetic_scans_csvs_and_cache_files_get_mode_0644_under_umask_022() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (data, cache) = (tmp.path().join("data"), tmp.path().join("cache"));
    let under_umask = |args: &[&str]| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 022 && exec \"$0\" \"$@\"")
            .arg(bin())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
    };
    under_umask(&[
        "synth",
        "--out",
        s(&data),
        "--series",
        "2",
        "--seed",
        "33",
        "--preset",
        "tiny",
    ]);
    under_umask(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&cache),
        "--threads",
        "2",
    ]);
    let mut files = 0;
    for root in [&data, &cache] {
        for entry in walkdir(root) {
            let mode = fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "{}: mode {mode:o}", entry.display());
            files += 1;
        }
    }
    assert!(files >= 10, "only {files} files checked");
}

/// Every regular file below `dir`.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}
