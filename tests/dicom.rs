//! DICOM series as scans (issue 25): a data folder holding LUNA16's
//! `subset*/<uid>.mhd` and LIDC-IDRI-style `patient/study/series/` DICOM
//! folders side by side builds the same caches, chunk for chunk, as the
//! same scans all as `.mhd` (scripts/mhd_to_dicom.py writes the series:
//! shuffled file names, signed and unsigned storage, a non-DICOM file
//! beside them).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use luna_e2e::prepcache::{ok, prepcache, s, scans, synth, text};

const SERIES: usize = 4;

/// `data`'s CSVs and scans in `mixed`: the first scan as `.mhd`, the others
/// as DICOM series (every second one shuffled and rescaled).
fn mixed_copy(data: &Path, mixed: &Path) {
    fs::create_dir_all(mixed.join("subset0")).unwrap();
    for csv in ["candidates.csv", "annotations.csv"] {
        fs::copy(data.join(csv), mixed.join(csv)).unwrap();
    }
    for (k, (uid, mhd)) in scans(data).into_iter().enumerate() {
        if k == 0 {
            for ext in ["mhd", "raw"] {
                let name = format!("{uid}.{ext}");
                fs::copy(mhd.with_file_name(&name), mixed.join("subset0").join(&name)).unwrap();
            }
            continue;
        }
        let series = mixed.join(format!("LIDC-IDRI-{k:04}/01-01-2000-1/3000{k}"));
        luna_e2e::python::mhd_to_dicom(&mhd, &series, k % 2 == 1);
        // LIDC ships its readers' XML next to the slices.
        fs::write(series.join("069.xml"), "<LidcReadMessage/>").unwrap();
    }
}

/// The content-named chunk shards of a cache folder, name → bytes.
fn shards(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir.join("shards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zst"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

fn assert_same_cache(a: &Path, b: &Path, files: &[&str]) {
    for file in files {
        assert!(
            fs::read(a.join(file)).unwrap() == fs::read(b.join(file)).unwrap(),
            "{file} differs"
        );
    }
    let (sa, sb) = (shards(a), shards(b));
    assert!(!sa.is_empty());
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    assert!(sa == sb, "shard bytes differ");
}

#[test]
fn dicom_series_beside_mhd_files_build_the_same_caches_as_all_mhd() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), SERIES, 3);
    let mixed = tmp.path().join("mixed");
    mixed_copy(&data, &mixed);

    let (all_mhd, both) = (tmp.path().join("c1"), tmp.path().join("c2"));
    for (d, c) in [(&data, &all_mhd), (&mixed, &both)] {
        luna_e2e::prepcache::build(d, c, &[]);
    }
    assert_same_cache(&all_mhd, &both, &["index.bin", "skipped.csv"]);
    let again = luna_e2e::prepcache::build(&mixed, &both, &[]);
    assert!(again.contains("up to date"), "{again}");

    let seg = |d: &Path, name: &str| -> PathBuf {
        let out = tmp.path().join(name);
        ok(&["seg", "--data", s(d), "--out", s(&out), "--val-stride", "2"]);
        out
    };
    let (seg_mhd, seg_both) = (seg(&data, "s1"), seg(&mixed, "s2"));
    for part in ["seg-train", "seg-val"] {
        assert_same_cache(&seg_mhd.join(part), &seg_both.join(part), &["index.bin"]);
    }
}

#[test]
fn a_series_on_disk_twice_is_one_line_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 1, 3);
    let (uid, mhd) = scans(&data).remove(0);
    luna_e2e::python::mhd_to_dicom(&mhd, &data.join("dicom/series"), false);
    let out = prepcache(&[
        "build",
        "--data",
        s(&data),
        "--out",
        s(&tmp.path().join("c")),
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("series {uid} is on disk twice"))
            && stderr.contains(&mhd.display().to_string())
            && stderr.contains("dicom/series"),
        "{stderr}"
    );
}

/// A truncated slice (the end of the series' last file cut off, as a
/// failed copy leaves it) refuses that series alone: the build goes on,
/// and every candidate row of the series is in skipped.csv with a reason
/// naming the file. Its other series are built.
#[test]
fn a_truncated_slice_skips_its_series_in_skipped_csv_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 5);
    let mixed = tmp.path().join("mixed");
    mixed_copy(&data, &mixed);
    let uids: Vec<String> = scans(&data).into_iter().map(|(uid, _)| uid).collect();
    let series = mixed.join("LIDC-IDRI-0001/01-01-2000-1/30001");
    let mut files: Vec<PathBuf> = fs::read_dir(&series)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|x| x != "xml"))
        .collect();
    files.sort();
    let cut = files.last().unwrap();
    let bytes = fs::read(cut).unwrap();
    fs::write(cut, &bytes[..bytes.len() / 2]).unwrap();

    let cache = tmp.path().join("cache");
    let out = luna_e2e::prepcache::build(&mixed, &cache, &[]);
    assert!(out.contains("cache complete"), "{out}");
    assert!(out.contains("1 unusable"), "{out}");
    let skipped = fs::read_to_string(cache.join("skipped.csv")).unwrap();
    let rows: Vec<&str> = skipped.lines().skip(1).collect();
    assert!(!rows.is_empty());
    let name = cut.file_name().unwrap().to_string_lossy().into_owned();
    for row in &rows {
        assert!(row.starts_with(&uids[1]), "{row}");
        assert!(
            row.contains("cannot be read") && row.contains(&name) && row.contains("truncated"),
            "{row}"
        );
    }
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["info", s(&cache), "--json"])).unwrap();
    assert_eq!(info["series"], 2, "the two other series are built");
}
