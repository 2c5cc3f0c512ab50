//! `train analyze` on real scans with book-style `.state` files the venv's
//! torch writes: its mask, candidates and probabilities equal the book's
//! chapter 14 pipeline (transcribed below) run by PyTorch on the same
//! scan and weights; its files; and the bad inputs a user meets.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use luna_e2e::prepcache::{s, scans, synth};
use luna_e2e::python::python_stdout;
use luna_e2e::train::train_output;
use serde_json::{json, Value};

/// World centres: sums of the same integers divided once, then one matrix
/// product whose terms may add in another order (mm).
const CENTRE_TOLERANCE: f64 = 1e-9;
/// fp32 probabilities of the same weights in libtorch and PyTorch.
const P_TOLERANCE: f64 = 1e-5;

/// The book's chapter 14 (`nodule_analysis.py` with p2ch13/p2ch14's
/// `dsets.py` and `util.py`), transcribed over scripts/*_model.py, after
/// making the weights: a U-Net whose last layer is scaled so P is far from
/// 0.5 almost everywhere (exact ties between libraries would otherwise
/// decide voxels) and about 3% of voxels are set, and a classifier.
const BOOK_ANALYSIS: &str = r#"
import json, sys
import numpy as np
import torch
from scipy import ndimage
from luna_model import LunaModel
from unet_model import UNetWrapper

cfg = json.load(open(sys.argv[1]))
shape = tuple(cfg["shape"])
slices = shape[0]
hu_a = np.fromfile(cfg["hu"], dtype="<i2").reshape(shape).astype(np.float32)
origin_a = np.array(cfg["origin"]); vxSize_a = np.array(cfg["spacing"])
direction_a = np.array(cfg["direction"]).reshape(3, 3)

def irc2xyz(coord_irc):
    cri_a = np.array(coord_irc)[::-1]
    return (direction_a @ (cri_a * vxSize_a)) + origin_a

def xyz2irc(coord_xyz):
    cri_a = ((np.array(coord_xyz) - origin_a) @ np.linalg.inv(direction_a)) / vxSize_a
    cri_a = np.round(cri_a)
    return (int(cri_a[2]), int(cri_a[1]), int(cri_a[0]))

def full_slice(ndx):  # p2ch13 Luna2dSegmentationDataset.getitem_fullSlice
    ct_t = torch.zeros((7, shape[1], shape[2]))
    for i, context_ndx in enumerate(range(ndx - 3, ndx + 4)):
        context_ndx = min(max(context_ndx, 0), slices - 1)
        ct_t[i] = torch.from_numpy(hu_a[context_ndx].astype(np.float32))
    ct_t.clamp_(-1000, 1000)
    return ct_t

def segment(model):  # segmentCt's loop over batches of 4
    output_a = np.zeros_like(hu_a, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, slices, 4):
            idx = list(range(start, min(start + 4, slices)))
            prediction_g = model(torch.stack([full_slice(i) for i in idx]))
            for k, i in enumerate(idx):
                output_a[i] = prediction_g[k].numpy()
    return output_a

def save(model, path):
    torch.save({"model_state": model.state_dict(), "epoch": 1}, path,
               _use_new_zipfile_serialization=False)

torch.manual_seed(5)
seg = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True,
                  batch_norm=True, up_mode="upconv")
# Running statistics of HU, as training leaves them: the random features
# then follow the anatomy, in a few large components.
seg.input_batchnorm.running_mean.fill_(-500.0)
seg.input_batchnorm.running_var.fill_(250000.0)
seg.eval()
# The logits, before UNetWrapper's sigmoid, whose P saturates here; the
# highest cut that leaves components worth comparing after the erosion.
logits = segment(lambda x: seg.unet(seg.input_batchnorm(x)))
for share in (0.97, 0.9, 0.8, 0.7, 0.6, 0.5):
    q = np.quantile(logits, share)
    eroded = ndimage.binary_erosion(logits > q, iterations=1)
    if eroded.sum() >= 500 and ndimage.label(eroded)[1] >= 5:
        break
with torch.no_grad():
    seg.unet.last.weight *= 1000.0
    seg.unet.last.bias.copy_((seg.unet.last.bias - float(q)) * 1000.0)
save(seg, cfg["seg"])
torch.manual_seed(6)
cls = LunaModel()
cls.tail_batchnorm.running_mean.fill_(-500.0)
cls.tail_batchnorm.running_var.fill_(250000.0)
cls.eval()
save(cls, cfg["cls"])

output_a = segment(seg)
mask_a = ndimage.binary_erosion(output_a > 0.5, iterations=1)
mask_a.astype(np.uint8).tofile(cfg["mask"])
labels, n = ndimage.label(mask_a)
centres = ndimage.center_of_mass(hu_a.clip(-1000, 1000) + 1001, labels=labels,
                                 index=np.arange(1, n + 1))
xyz = [irc2xyz(c) for c in centres]

clipped = hu_a.clip(-1000, 1000)  # p2ch14 Ct.__init__
def raw_candidate(center_xyz, width_irc=(32, 48, 48)):  # Ct.getRawCandidate
    center_irc = xyz2irc(center_xyz)
    slice_list = []
    for axis, center_val in enumerate(center_irc):
        start_ndx = int(round(center_val - width_irc[axis] / 2))
        end_ndx = int(start_ndx + width_irc[axis])
        assert 0 <= center_val < shape[axis]
        if start_ndx < 0:
            start_ndx, end_ndx = 0, int(width_irc[axis])
        if end_ndx > shape[axis]:
            end_ndx = shape[axis]
            start_ndx = int(shape[axis] - width_irc[axis])
        slice_list.append(slice(start_ndx, end_ndx))
    return clipped[tuple(slice_list)]

probs = []
with torch.no_grad():  # classifyCandidates, in batches
    for start in range(0, len(xyz), 32):
        crops = [raw_candidate(c) for c in xyz[start:start + 32]]
        x = torch.from_numpy(np.stack(crops)).to(torch.float32)[:, None]
        probs.extend(float(p) for p in cls(x)[1][:, 1])
print(json.dumps(dict(count=int(n), share=share, xyz=[list(map(float, c)) for c in xyz], p=probs,
                      near=int((np.abs(output_a - 0.5) < 1e-4).sum()))))
"#;

/// The scan's voxels and geometry for Python, and where it writes.
fn config(dir: &Path, mhd: &Path) -> PathBuf {
    let volume = shared::metaimage::read_volume(mhd).unwrap();
    let hu = dir.join("hu.raw");
    let bytes: Vec<u8> = volume.voxels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&hu, bytes).unwrap();
    let g = &volume.geometry;
    let cfg = json!({
        "shape": volume.shape,
        "hu": hu,
        "origin": g.origin,
        "spacing": g.spacing,
        "direction": g.direction.concat(),
        "seg": dir.join("seg.state"),
        "cls": dir.join("cls.state"),
        "mask": dir.join("book_mask.raw"),
    });
    let path = dir.join("cfg.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

fn run_book(dir: &Path, mhd: &Path) -> Value {
    let cfg = config(dir, mhd);
    let stdout = python_stdout(BOOK_ANALYSIS, &[cfg.as_os_str()], |cmd| {
        cmd.env("PYTHONPATH", luna_e2e::python::scripts_dir())
            .env("OMP_NUM_THREADS", "2");
    });
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}):\n{stdout}"))
}

fn analyze(args: &[&OsStr]) -> (bool, String) {
    let mut all: Vec<&OsStr> = vec![OsStr::new("analyze")];
    all.extend_from_slice(args);
    all.extend(["--device", "cpu", "--threads", "2"].map(OsStr::new));
    train_output(&all)
}

/// `train analyze` of `scan` as the book computes it (fp32, contiguous),
/// with the `seg.state` and `cls.state` in `models`, keeping the mask.
fn analyze_fp32(scan: &Path, models: &Path, out: &Path) -> (bool, String) {
    analyze(&[
        "--scan".as_ref(),
        scan.as_os_str(),
        "--seg-model".as_ref(),
        models.join("seg.state").as_os_str(),
        "--cls-model".as_ref(),
        models.join("cls.state").as_os_str(),
        "--precision".as_ref(),
        "fp32".as_ref(),
        "--memory-format".as_ref(),
        "contiguous".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--keep-mask".as_ref(),
    ])
}

/// nodules.csv's rows: (xyz, probability, malignancy text).
fn nodule_rows(path: &Path) -> Vec<([f64; 3], f64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("seriesuid,coordX,coordY,coordZ,probability,malignancy")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 6, "{l}");
            let n = |k: usize| f[k].parse::<f64>().unwrap();
            ([n(1), n(2), n(3)], n(4), f[5].to_owned())
        })
        .collect()
}

#[test]
fn analyze_equals_the_books_pipeline_on_the_same_scan_and_state_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 1, 21);
    let (uid, mhd) = scans(&data).remove(0);
    let book = run_book(tmp.path(), &mhd);
    let out = tmp.path().join("out");
    let (ok, text) = analyze_fp32(&mhd, tmp.path(), &out);
    assert!(ok, "{text}");
    assert_eq!(
        book["near"], 0,
        "voxels at P ≈ 0.5 would make the masks a coin toss"
    );

    let ours_mask = std::fs::read(out.join(format!("{uid}.mask.raw"))).unwrap();
    let book_mask = std::fs::read(tmp.path().join("book_mask.raw")).unwrap();
    let differ = ours_mask
        .iter()
        .zip(&book_mask)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(ours_mask.len(), book_mask.len());
    assert_eq!(differ, 0, "eroded masks differ in {differ} voxels");
    let set = ours_mask.iter().filter(|&&m| m == 1).count();
    assert!(set > 100, "only {set} mask voxels: a weak test");

    let rows = nodule_rows(&out.join("nodules.csv"));
    let count = book["count"].as_u64().unwrap() as usize;
    assert_eq!(rows.len(), count, "candidates");
    assert!(count >= 5, "only {count} candidates: a weak test");
    let (mut d_xyz, mut d_p) = (0f64, 0f64);
    for (k, (xyz, p, mal)) in rows.iter().enumerate() {
        for (a, b) in xyz.iter().zip(book["xyz"][k].as_array().unwrap()) {
            d_xyz = d_xyz.max((a - b.as_f64().unwrap()).abs());
        }
        d_p = d_p.max((p - book["p"][k].as_f64().unwrap()).abs());
        assert_eq!(mal, "", "no malignancy model, no malignancy");
    }
    println!(
        "cut at the {} quantile of the logits: {set} mask voxels",
        book["share"]
    );
    println!("{count} candidates; centres within {d_xyz:e} mm, P within {d_p:e}");
    assert!(d_xyz <= CENTRE_TOLERANCE, "centres differ by {d_xyz} mm");
    assert!(d_p <= P_TOLERANCE, "probabilities differ by {d_p}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["scans"][0]["candidates"], count);
    assert!(report["table"].is_null(), "no annotations, no table");
    let png = std::fs::read(out.join(format!("{uid}.png"))).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "picture");
    let mhd_text = std::fs::read_to_string(out.join(format!("{uid}.mask.mhd"))).unwrap();
    assert!(mhd_text.contains("ElementType = MET_UCHAR"), "{mhd_text}");

    the_same_scan_as_a_dicom_series_gives_the_same_analysis(tmp.path(), &mhd, &out);
}

/// The scan written as a DICOM series (scripts/mhd_to_dicom.py: shuffled
/// file names, unsigned storage with an intercept, in a patient/study/series
/// tree) analysed with the same models: the same nodules.csv and mask, byte
/// for byte, and `prepcache inspect` of the folder sees the same voxels.
fn the_same_scan_as_a_dicom_series_gives_the_same_analysis(dir: &Path, mhd: &Path, mhd_out: &Path) {
    let series = dir.join("dicom/patient/study/series");
    luna_e2e::python::mhd_to_dicom(mhd, &series, true);
    let out = dir.join("out-dicom");
    let (ok, text) = analyze_fp32(&dir.join("dicom"), dir, &out);
    assert!(ok, "{text}");
    for file in [
        "nodules.csv".to_owned(),
        format!("{}.mask.raw", uid_of(mhd)),
    ] {
        let (a, b) = (
            std::fs::read(mhd_out.join(&file)),
            std::fs::read(out.join(&file)),
        );
        assert!(
            a.unwrap() == b.unwrap(),
            "{file} differs between the .mhd and the series"
        );
    }
    let values = |path: &Path| {
        let text = luna_e2e::prepcache::ok(&["inspect", s(path)]);
        text[text.find("values:").expect("a values section")..].to_owned()
    };
    assert_eq!(values(&series), values(mhd));
}

fn uid_of(mhd: &Path) -> String {
    mhd.file_stem().unwrap().to_string_lossy().into_owned()
}

/// A failure is one line on stderr and no panic or backtrace.
fn assert_one_line_failure(ok: bool, text: &str, needles: &[&str]) {
    assert!(!ok, "analyze succeeded:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {text}");
    for needle in needles {
        assert!(errors[0].contains(needle), "{needle:?} in {text}");
    }
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
}

#[test]
fn wrong_models_a_run_folder_and_unusable_scans_are_one_line_each() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 1, 21);
    let (_, mhd) = scans(&data).remove(0);
    let files = luna_e2e::book_state::write(tmp.path(), "cls", "luna", 4, "");
    let seg = luna_e2e::book_state::write(tmp.path(), "seg", "unet", 4, "");
    let out = tmp.path().join("out");
    let run = |seg_model: &Path, cls_model: &Path, scan: &Path, out: &Path| {
        analyze(&[
            "--scan".as_ref(),
            scan.as_os_str(),
            "--seg-model".as_ref(),
            seg_model.as_os_str(),
            "--cls-model".as_ref(),
            cls_model.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
    };
    // The models swapped: the flag, the file and what it holds.
    let (ok, text) = run(&files.zip, &seg.zip, &mhd, &out);
    assert_one_line_failure(ok, &text, &["--seg-model", s(&files.zip), "LunaModel"]);
    let (ok, text) = run(&seg.legacy, &seg.zip, &mhd, &out);
    assert_one_line_failure(ok, &text, &["--cls-model", "U-Net", "not a LunaModel"]);
    // A file that is no model at all.
    let (ok, text) = run(&seg.legacy, &mhd, &mhd, &out);
    assert_one_line_failure(ok, &text, &["--cls-model", s(&mhd)]);
    // --out inside a training run's folder.
    let run_dir = tmp.path().join("runs/p2ch12/2026-01-01_00.00.00-cls-x");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("metrics.jsonl"), "").unwrap();
    let (ok, text) = run(&seg.legacy, &files.zip, &mhd, &run_dir.join("analysis"));
    assert_one_line_failure(ok, &text, &["--out", "inside the training run folder"]);

    // A scan thinner than the classifier's 32 slices: said, and skipped;
    // with no other scan, nothing could be analysed.
    let mut volume = shared::metaimage::read_volume(&mhd).unwrap();
    volume.shape[0] = 20;
    volume
        .voxels
        .truncate(20 * volume.shape[1] * volume.shape[2]);
    let thin = tmp.path().join("thin.mhd");
    shared::metaimage::write_volume(&thin, &volume).unwrap();
    let (ok, text) = run(&seg.legacy, &files.zip, &thin, &out);
    println!("{text}");
    assert!(
        text.contains("skipped") || text.contains("no candidate"),
        "{text}"
    );
    if !ok {
        assert_one_line_failure(ok, &text, &["no scan could be analysed"]);
        assert!(
            text.contains("smaller than the classifier's crop"),
            "{text}"
        );
    }
}

#[test]
fn a_scan_without_candidates_gets_an_empty_table_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 1, 21);
    let (uid, mhd) = scans(&data).remove(0);
    // A U-Net that sets no voxel: its last layer's bias far below zero.
    let empty = r#"
with torch.no_grad():
    m.unet.last.bias.fill_(-1e4)
torch.save({"model_state": m.state_dict()}, stem + ".empty.state")
"#;
    let seg = luna_e2e::book_state::write(tmp.path(), "seg", "unet", 4, empty);
    let cls = luna_e2e::book_state::write(tmp.path(), "cls", "luna", 4, "");
    let out = tmp.path().join("out");
    let annotations = data.join("annotations.csv");
    let (ok, text) = analyze(&[
        "--scan".as_ref(),
        mhd.as_os_str(),
        "--seg-model".as_ref(),
        tmp.path().join("seg.empty.state").as_os_str(),
        "--cls-model".as_ref(),
        cls.zip.as_os_str(),
        "--annotations".as_ref(),
        annotations.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    drop(seg);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("{uid}: 0 candidates")), "{text}");
    assert!(
        text.contains("no candidates: the segmentation marked nothing"),
        "{text}"
    );
    // Every annotated nodule of the scan is a complete miss.
    let nodules = std::fs::read_to_string(&annotations)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(&uid))
        .count() as u64;
    assert!(nodules > 0, "the scan has no nodules: a weak test");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["table"]["counts"][1][0], nodules,
        "{}",
        report["table"]
    );
    assert_eq!(report["table"]["found"], 0);
    let rows = nodule_rows(&out.join("nodules.csv"));
    assert!(rows.is_empty(), "{rows:?}");
    assert!(out.join(format!("{uid}.png")).is_file());
}
