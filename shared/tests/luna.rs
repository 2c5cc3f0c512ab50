//! The book's candidate list on hand-made CSVs and scan folders.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use shared::luna::{
    find_series, load_candidates, read_annotations_csv, read_annotations_with_malignancy_csv,
    read_candidates_csv, split, LunaError, MalignancyRow,
};

const CAND_HEADER: &str = "seriesuid,coordX,coordY,coordZ,class\n";
const ANN_HEADER: &str = "seriesuid,coordX,coordY,coordZ,diameter_mm\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, text).unwrap();
    path
}

fn present(uids: &[&str]) -> BTreeMap<String, PathBuf> {
    uids.iter()
        .map(|u| (u.to_string(), PathBuf::from(format!("subset0/{u}.mhd"))))
        .collect()
}

/// (is_nodule, diameter, uid, xyz) of one entry, for compact assertions.
type Entry = (bool, f64, String, [f64; 3]);

fn load(cands: &str, anns: &str, on_disk: &[&str]) -> (Vec<Entry>, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let c = write(
        dir.path(),
        "candidates.csv",
        &format!("{CAND_HEADER}{cands}"),
    );
    let a = write(
        dir.path(),
        "annotations.csv",
        &format!("{ANN_HEADER}{anns}"),
    );
    let list = load_candidates(&c, &a, &present(on_disk)).unwrap();
    let rows = list
        .candidates
        .into_iter()
        .map(|c| (c.is_nodule, c.diameter_mm, c.series_uid, c.center_xyz))
        .collect();
    (rows, list.missing_series, list.missing_candidates)
}

#[test]
fn first_matching_annotation_in_file_order_wins() {
    // Both annotations contain the candidate; the first one listed gives the diameter,
    // even though the second is closer and larger.
    let (rows, _, _) = load("s,10,10,10,1\n", "s,11,11,11,8\ns,10,10,10,20\n", &["s"]);
    assert_eq!(rows[0].1, 8.0);
    let (rows, _, _) = load("s,10,10,10,1\n", "s,10,10,10,20\ns,11,11,11,8\n", &["s"]);
    assert_eq!(rows[0].1, 20.0);
}

#[test]
fn candidate_matching_no_annotation_has_diameter_zero() {
    // Off by more than d/4 on one axis only; and an annotation of another series.
    let (rows, _, _) = load("s,10,10,10,1\n", "s,10,10,13,8\nother,10,10,10,8\n", &["s"]);
    assert_eq!(rows[0].1, 0.0);
}

#[test]
fn boundary_of_exactly_a_quarter_diameter_matches() {
    // d = 8 → limit 2.0, exactly representable: 12 - 10 = 2 matches, 12.0001 does not.
    let (rows, _, _) = load(
        "s,12,8,10,1\nt,12.0001,10,10,1\n",
        "s,10,10,10,8\nt,10,10,10,8\n",
        &["s", "t"],
    );
    let by_uid: BTreeMap<_, _> = rows.iter().map(|r| (r.2.as_str(), r.1)).collect();
    assert_eq!(by_uid["s"], 8.0);
    assert_eq!(by_uid["t"], 0.0);
}

#[test]
fn class_zero_candidates_also_get_a_diameter() {
    let (rows, _, _) = load("s,10,10,10,0\n", "s,10.5,10,10,6\n", &["s"]);
    assert_eq!(rows, vec![(false, 6.0, "s".into(), [10.0, 10.0, 10.0])]);
}

#[test]
fn sorted_descending_on_the_whole_tuple() {
    let cands = "\
a,1,1,1,0
b,1,1,2,0
a,5,1,1,1
a,1,1,1,1
b,0,0,0,1
a,1,2,1,0
a,1,1,2,0
a,-0.0,3,3,0
a,0.0,3,3,0
";
    let anns = "b,0,0,0,4\n";
    let (rows, _, _) = load(cands, anns, &["a", "b"]);
    let got: Vec<(bool, f64, &str, [f64; 3])> =
        rows.iter().map(|r| (r.0, r.1, r.2.as_str(), r.3)).collect();
    assert_eq!(
        got,
        vec![
            // positives first, larger diameter first
            (true, 4.0, "b", [0.0, 0.0, 0.0]),
            (true, 0.0, "a", [5.0, 1.0, 1.0]),
            (true, 0.0, "a", [1.0, 1.0, 1.0]),
            // then uid descending, then x, y, z descending
            (false, 0.0, "b", [1.0, 1.0, 2.0]),
            (false, 0.0, "a", [1.0, 2.0, 1.0]),
            (false, 0.0, "a", [1.0, 1.0, 2.0]),
            (false, 0.0, "a", [1.0, 1.0, 1.0]),
            // -0.0 == 0.0 as in Python: the second row is a duplicate of
            // the first, which is kept
            (false, 0.0, "a", [-0.0, 3.0, 3.0]),
        ]
    );
    assert!(rows[7].3[0].is_sign_negative());
}

#[test]
fn missing_series_are_dropped_and_counted() {
    let cands = "a,1,1,1,0\ngone,1,1,1,1\ngone,2,2,2,0\nalso_gone,3,3,3,0\nb,1,1,1,0\n";
    let (rows, missing_series, missing_candidates) = load(cands, "", &["a", "b"]);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.2 == "a" || r.2 == "b"));
    assert_eq!((missing_series, missing_candidates), (2, 3));
}

#[test]
fn split_takes_every_strideth_element_for_validation() {
    let list: Vec<usize> = (0..23).collect();
    let (train, val) = split(&list, 10).unwrap();
    assert_eq!(val, vec![0, 10, 20]);
    assert_eq!(train.len(), 20);
    assert!(!train.contains(&0) && !train.contains(&10) && train.contains(&11));
    let (train, val) = split(&list, 1).unwrap();
    assert!(train.is_empty());
    assert_eq!(val, list);
    assert!(matches!(split(&list, 0), Err(LunaError::ZeroStride)));
}

fn row_error(name: &str, header: &str, body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, &format!("{header}{body}"));
    let err = if name.starts_with("candidates") {
        read_candidates_csv(&path).map(|_| ()).unwrap_err()
    } else {
        read_annotations_csv(&path).map(|_| ()).unwrap_err()
    };
    let msg = err.to_string();
    assert!(msg.contains(name), "error should name the file: {msg}");
    msg
}

#[test]
fn bad_rows_are_reported_with_file_and_line() {
    let ok = "s,1,2,3,0\n";
    let cases = [
        (format!("{ok}s,1,2\n"), "line 3", "missing field coordZ"),
        (
            format!("{ok}{ok}s,1,x,3,0\n"),
            "line 4",
            "coordY is not a number",
        ),
        (format!("{ok}s,1,NaN,3,0\n"), "line 3", "finite"),
        (format!("{ok}s,inf,2,3,0\n"), "line 3", "finite"),
        (format!("{ok}s,1,2,3,2\n"), "line 3", "class must be 0 or 1"),
        (format!("{ok},1,2,3,0\n"), "line 3", "empty seriesuid"),
    ];
    for (body, line, reason) in cases {
        let msg = row_error("candidates.csv", CAND_HEADER, &body);
        assert!(msg.contains(line) && msg.contains(reason), "{msg}");
    }
    let msg = row_error("annotations.csv", ANN_HEADER, "s,1,2,3,-4\n");
    assert!(msg.contains("line 2") && msg.contains("negative"), "{msg}");
    let msg = row_error("annotations.csv", ANN_HEADER, "s,1,2,3\n");
    assert!(msg.contains("missing field diameter_mm"), "{msg}");
}

#[test]
fn wrong_header_is_rejected() {
    let msg = row_error("candidates.csv", "uid,x,y,z,class\n", "s,1,2,3,0\n");
    assert!(
        msg.contains("seriesuid,coordX,coordY,coordZ,class"),
        "{msg}"
    );
    // The annotations file passed where candidates are expected.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.csv", &format!("{ANN_HEADER}s,1,2,3,4\n"));
    assert!(read_candidates_csv(&path).is_err());
}

#[test]
fn tolerates_spaces_crlf_extra_columns_and_bom() {
    let dir = tempfile::tempdir().unwrap();
    let text = "\u{feff}seriesuid,coordX,coordY,coordZ,class,extra\r\n s , -1.5e1 ,2, 3 ,1,x\r\n";
    let path = write(dir.path(), "candidates.csv", text);
    let rows = read_candidates_csv(&path).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].series_uid.as_str(),
            rows[0].center_xyz,
            rows[0].is_nodule
        ),
        ("s", [-15.0, 2.0, 3.0], true)
    );
}

/// Columns are found by name (as the scorer finds them), and a row's line
/// counts the blank lines before it.
#[test]
fn columns_by_name_and_lines_counting_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = "class,coordZ,seriesuid,coordY,coordX\n1,3,s,2,1\n\n0,6,t,5,x\n";
    let path = write(dir.path(), "candidates.csv", text);
    let msg = read_candidates_csv(&path).unwrap_err().to_string();
    assert!(
        msg.contains("line 4") && msg.contains("coordX is not a number"),
        "{msg}"
    );
    let path = write(dir.path(), "c2.csv", &text.replace(",x\n", ",4\n"));
    let rows = read_candidates_csv(&path).unwrap();
    assert_eq!(
        (
            rows[1].series_uid.as_str(),
            rows[1].center_xyz,
            rows[1].is_nodule
        ),
        ("t", [4.0, 5.0, 6.0], false)
    );
}

#[test]
fn missing_csv_names_the_path() {
    let err = read_candidates_csv(Path::new("/nonexistent/candidates.csv")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/candidates.csv"));
}

#[test]
fn find_series_takes_mhd_below_subset_folders_at_any_depth() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "subset0/a.mhd", "");
    write(root, "subset0/a.raw", "");
    write(root, "luna/subset1/b.mhd", "");
    write(root, "subset2/nested/c.mhd", "");
    write(root, "other/d.mhd", "");
    write(root, "e.mhd", "");
    write(root, "subset3/notes.txt", "");
    let found = find_series(root).unwrap();
    let uids: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(uids, ["a", "b", "c"]);
    assert_eq!(found["b"], root.join("luna/subset1/b.mhd"));
    // Pointing at one subset folder takes its scans.
    let one = find_series(&root.join("subset0")).unwrap();
    assert_eq!(one.keys().collect::<Vec<_>>(), ["a"]);
}

#[test]
fn find_series_rejects_a_series_present_twice() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "subset0/a.mhd", "");
    write(dir.path(), "subset5/a.mhd", "");
    let msg = find_series(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("subset0/a.mhd") && msg.contains("subset5/a.mhd"),
        "{msg}"
    );
}

#[test]
fn find_series_on_a_missing_folder_is_an_error_naming_it() {
    let msg = find_series(Path::new("/nonexistent/luna"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/nonexistent/luna"), "{msg}");
}

#[test]
fn duplicate_rows_are_kept_once_and_named_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        "a,1.5,2,3,0",    // line 2
        "a,1.50,2,3,0",   // line 3: the same numbers as line 2
        "a,1.5,2,3,1",    // line 4: another class, not a duplicate
        "b,-0.0,0,0,0",   // line 5
        "b,0,0,0,0",      // line 6: -0.0 == 0
        "a,1.5,2,3,0",    // line 7
        "a,1.5,2,3.01,0", // line 8: another place
    ];
    let c = write(
        dir.path(),
        "candidates.csv",
        &format!("{CAND_HEADER}{}\n", rows.join("\n")),
    );
    let a = write(dir.path(), "annotations.csv", ANN_HEADER);
    let list = load_candidates(&c, &a, &present(&["a", "b"])).unwrap();
    let lines: Vec<u64> = list.candidates.iter().map(|c| c.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(sorted, [2, 4, 5, 8], "{lines:?}");
    let dups: Vec<(u64, u64)> = list
        .duplicates
        .iter()
        .map(|d| (d.line, d.first_line))
        .collect();
    assert_eq!(dups, [(3, 2), (6, 5), (7, 2)]);
    let warning = list.duplicates_warning(&c).unwrap();
    assert!(
        warning.contains(&c.display().to_string())
            && warning.contains("3 duplicate candidate row(s)")
            && warning.contains("line 3 (= line 2), line 6 (= line 5), line 7 (= line 2)")
            && !warning.contains('…'),
        "{warning}"
    );

    // Past five, the rest is "…"; without duplicates there is no warning.
    let many = format!("{CAND_HEADER}{}", "a,1,2,3,0\n".repeat(8));
    let c = write(dir.path(), "many.csv", &many);
    let list = load_candidates(&c, &a, &present(&["a"])).unwrap();
    assert_eq!(list.candidates.len(), 1);
    let warning = list.duplicates_warning(&c).unwrap();
    assert!(
        warning.contains("7 duplicate") && warning.contains("line 7 (= line 2), …"),
        "{warning}"
    );
    let c = write(dir.path(), "one.csv", &format!("{CAND_HEADER}a,1,2,3,0\n"));
    let list = load_candidates(&c, &a, &present(&["a"])).unwrap();
    assert!(list.duplicates_warning(&c).is_none());
}

#[test]
fn find_series_lists_a_dangling_mhd_link_and_passes_over_other_dangling_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "subset0/a.mhd", "");
    fs::create_dir_all(root.join("subset1")).unwrap();
    let link = |name: &str| {
        std::os::unix::fs::symlink(root.join("gone"), root.join(name)).unwrap();
    };
    link("subset0/b.mhd");
    link("subset0/b.raw");
    link("subset9");
    let found = find_series(root).unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(found["b"], root.join("subset0/b.mhd"));
}

#[test]
fn a_csv_that_is_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("candidates.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || tx.send(read_candidates_csv(&path).map(|r| r.len())));
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("reading a FIFO blocked");
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.contains("candidates.csv") && msg.contains("not a regular file"),
        "{msg}"
    );
}

const MAL_HEADER: &str = "seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool,mal_details,\
bboxLowX,bboxLowY,bboxLowZ,bboxHighX,bboxHighY,bboxHighZ,len_mal_details\n";

fn mal_row(uid: &str, xyz: [f64; 3], diameter_mm: f64, malignant: bool) -> MalignancyRow {
    MalignancyRow {
        series_uid: uid.to_owned(),
        center_xyz: xyz,
        diameter_mm,
        malignant,
    }
}

#[test]
fn malignancy_rows_read_back_with_quoted_details() {
    let dir = tempfile::tempdir().unwrap();
    // The book's first row, then every accepted spelling of mal_bool.
    let body = "\
1.3.6.860,-128.6994211,-175.31927180000002,-298.38750639999995,5.651470635,True,\"[4, 2, 4, 2]\",\
-131.89648,-178.25976125,-299.8000036716461,-125.4511675,-172.45898,-296.2000037670135,4
s,1,2,3,4.5,False,\"[3, 2, 3]\",0,1,2,2,3,4,3
s,4,5,6,7,true,\"[5]\",3,4,5,5,6,7,1
t,7,8,9,10,false,\"[1, 1]\",6,7,8,8,9,10,2
t,-1,-2,-3,0,1,\"[]\",-1,-2,-3,-1,-2,-3,0
u,1e1,2,3,6,0,\"[2, 2, 2, 2]\",9,1,2,11,3,4,4
";
    let path = write(
        dir.path(),
        "annotations_with_malignancy.csv",
        &format!("{MAL_HEADER}{body}"),
    );
    let rows = read_annotations_with_malignancy_csv(&path).unwrap();
    assert_eq!(
        rows,
        [
            mal_row(
                "1.3.6.860",
                [-128.6994211, -175.31927180000002, -298.38750639999995],
                5.651470635,
                true
            ),
            mal_row("s", [1.0, 2.0, 3.0], 4.5, false),
            mal_row("s", [4.0, 5.0, 6.0], 7.0, true),
            mal_row("t", [7.0, 8.0, 9.0], 10.0, false),
            mal_row("t", [-1.0, -2.0, -3.0], 0.0, true),
            mal_row("u", [10.0, 2.0, 3.0], 6.0, false),
        ]
    );
}

#[test]
fn malignancy_columns_are_found_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = "mal_details,mal_bool,extra,diameter_mm,coordZ,coordY,coordX,seriesuid\n\
\"[4, 4]\",True,\"a, b\",8,3,2,1,s\n";
    let path = write(dir.path(), "m.csv", text);
    let rows = read_annotations_with_malignancy_csv(&path).unwrap();
    assert_eq!(rows, [mal_row("s", [1.0, 2.0, 3.0], 8.0, true)]);
}

#[test]
fn bad_malignancy_rows_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let ok = "s,1,2,3,4,True,\"[4, 4, 4]\",0,1,2,2,3,4,3\n";
    let cases = [
        (
            format!("{ok}{ok}s,1,2,3,4,maybe,\"[4, 4]\",0,1,2,2,3,4,2\n"),
            "line 4: mal_bool must be True or False",
        ),
        (
            format!("{ok}s,1,2,3,4,TRUE,\"[4]\",0,1,2,2,3,4,1\n"),
            "line 3: mal_bool",
        ),
        (
            format!("{ok}s,1,2,3,4,,\"[4]\",0,1,2,2,3,4,1\n"),
            "line 3: mal_bool",
        ),
        (
            format!("{ok}s,1,2,3,-4,True\n"),
            "line 3: diameter_mm must not be negative",
        ),
        (format!("{ok}s,1,2,3,4\n"), "line 3: missing field mal_bool"),
        // An unquoted list splits into fields but is still read by name.
        (
            format!("{ok}s,1,2,x,4,True,[4, 4]\n"),
            "line 3: coordZ is not a number",
        ),
    ];
    for (k, (body, needle)) in cases.iter().enumerate() {
        let name = format!("mal{k}.csv");
        let path = write(dir.path(), &name, &format!("{MAL_HEADER}{body}"));
        let msg = read_annotations_with_malignancy_csv(&path)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&name) && msg.contains(needle) && !msg.contains('\n'),
            "{msg}"
        );
    }
    // annotations.csv has no mal_bool column.
    let path = write(
        dir.path(),
        "annotations.csv",
        &format!("{ANN_HEADER}s,1,2,3,4\n"),
    );
    let msg = read_annotations_with_malignancy_csv(&path)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing column `mal_bool`"), "{msg}");
}

/// The book's own file (1,182 annotations, 378 malignant); run with
/// `LUNA_MALIGNANCY_CSV=/path/to/annotations_with_malignancy.csv cargo test
/// -p shared --test shared -- --ignored reads_the_books`.
#[test]
#[ignore]
fn reads_the_books_annotations_with_malignancy() {
    let path = std::env::var_os("LUNA_MALIGNANCY_CSV").expect("set LUNA_MALIGNANCY_CSV");
    let rows = read_annotations_with_malignancy_csv(Path::new(&path)).unwrap();
    assert_eq!(rows.len(), 1182);
    assert_eq!(rows.iter().filter(|r| r.malignant).count(), 378);
    assert!(rows.iter().all(|r| r.diameter_mm > 0.0));
    let first = &rows[0];
    assert!(first.series_uid.ends_with("836860"));
    assert_eq!(
        (first.center_xyz, first.diameter_mm, first.malignant),
        (
            [-128.6994211, -175.31927180000002, -298.38750639999995],
            5.651470635,
            true
        )
    );
}
