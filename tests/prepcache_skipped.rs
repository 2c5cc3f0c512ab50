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
