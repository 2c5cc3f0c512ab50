//! Chapter 14's scan → candidates path (`train::analyze`) against the book's
//! own code run in Python: scipy.ndimage for the erosion, labels and centres
//! of mass, and a transcription of `segmentCt` (with `getitem_fullSlice`)
//! over scripts/unet_model.py's `UNetWrapper` on the same weights.

use std::path::Path;
use std::time::Instant;

use luna_synth::{generate_series, Preset};
use ndarray::ArrayView3;
use serde_json::json;
use shared::volume::Volume;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::analyze::components::erode;
use train::analyze::runs::Components;
use train::analyze::{
    candidates_from_mask, segment_probabilities, segment_scan, SegmentOptions, MASK_THRESHOLD,
};
use train::model::compute::{ComputeConfig, MemoryFormat, Precision};
use train::model::{prepare_weights, UNet, UNetConfig};

use crate::pytorch_support::run_python;

/// Voxel centres are exact integer sums divided once on both sides and are
/// compared to the bit; world centres add a matrix product whose sums run
/// in another order, so they get this (mm).
const CENTRE_TOLERANCE: f64 = 1e-9;
/// fp32 outputs of the same weights in libtorch and PyTorch: masks may
/// differ only where P is this close to the 0.5 threshold.
const NEAR_THRESHOLD: f32 = 1e-4;

/// The book's helpers, transcribed: `util.irc2xyz` and the grouping of
/// `groupSegmentationOutput` (scipy.ndimage's functions under their current
/// names; `scipy.ndimage.measurements`/`morphology` are deprecated aliases).
const BOOK_PRELUDE: &str = r#"
import json, sys
import numpy as np
from scipy import ndimage

cfg = json.load(open(sys.argv[1]))
shape = tuple(cfg["shape"])
# The book's Ct.hu_a: float32 of the stored voxels.
hu_a = np.fromfile(cfg["hu"], dtype="<i2").reshape(shape).astype(np.float32)
origin_a = np.array(cfg["origin"])
vxSize_a = np.array(cfg["spacing"])
direction_a = np.array(cfg["direction"]).reshape(3, 3)

def irc2xyz(coord_irc):
    cri_a = np.array(coord_irc)[::-1]
    return (direction_a @ (cri_a * vxSize_a)) + origin_a

def group(clean_a):
    candidateLabel_a, candidate_count = ndimage.label(clean_a)
    centerIrc_list = ndimage.center_of_mass(
        hu_a.clip(-1000, 1000) + 1001,
        labels=candidateLabel_a,
        index=np.arange(1, candidate_count + 1),
    )
    # Raw float64, not JSON: a JSON reader may round the last bit.
    np.array(centerIrc_list, dtype="<f8").tofile(cfg["irc"])
    np.array([irc2xyz(c) for c in centerIrc_list], dtype="<f8").tofile(cfg["xyz"])
    return candidateLabel_a, candidate_count
"#;

fn config(dir: &Path, volume: &Volume, extra: serde_json::Value) -> std::path::PathBuf {
    let hu = dir.join("hu.raw");
    let bytes: Vec<u8> = volume.voxels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&hu, bytes).unwrap();
    let g = &volume.geometry;
    let mut cfg = json!({
        "shape": volume.shape,
        "hu": hu,
        "origin": g.origin,
        "spacing": g.spacing,
        "direction": g.direction.concat(),
    });
    cfg.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    cfg["irc"] = json!(dir.join("irc.raw"));
    cfg["xyz"] = json!(dir.join("xyz.raw"));
    let path = dir.join("cfg.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

fn read_le<const N: usize, T>(path: &Path, from: fn([u8; N]) -> T) -> Vec<T> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .chunks_exact(N)
        .map(|c| from(c.try_into().unwrap()))
        .collect()
}

/// The book's centres (`irc` or `xyz`) as Python wrote them.
fn book_centres(dir: &Path, which: &str) -> Vec<[f64; 3]> {
    let flat = read_le(&dir.join(format!("{which}.raw")), f64::from_le_bytes);
    flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

fn max_diff(ours: &[[f64; 3]], theirs: &[[f64; 3]]) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "component count");
    ours.iter()
        .zip(theirs)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f64::max)
}

/// Erosion, labels (array and numbering) and centres equal scipy's on
/// `mask` over `volume`'s HU.
fn check_components_against_scipy(volume: &Volume, mask: &[bool]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mask_path = dir.path().join("mask.raw");
    std::fs::write(
        &mask_path,
        mask.iter().map(|&m| u8::from(m)).collect::<Vec<_>>(),
    )
    .unwrap();
    let (eroded_path, labels_path) = (dir.path().join("eroded.raw"), dir.path().join("labels.raw"));
    let extra = json!({"mask": mask_path, "eroded": eroded_path, "labels": labels_path});
    let cfg = config(dir.path(), volume, extra);
    let script = format!(
        r#"{BOOK_PRELUDE}
mask_a = np.fromfile(cfg["mask"], dtype=np.uint8).reshape(shape).astype(bool)
clean_a = ndimage.binary_erosion(mask_a, iterations=1)
labels, n = group(clean_a)
clean_a.astype(np.uint8).tofile(cfg["eroded"])
labels.astype("<i4").tofile(cfg["labels"])
print(json.dumps(dict(count=int(n))))
"#
    );
    let got = run_python(&script, &[cfg.as_os_str()]);
    let [i, r, c] = volume.shape;
    let view = ArrayView3::from_shape((i, r, c), mask).unwrap();
    let eroded = erode(view);
    let theirs_eroded = read_le(&eroded_path, |[b]: [u8; 1]| b == 1);
    assert_eq!(
        eroded.iter().copied().collect::<Vec<_>>(),
        theirs_eroded,
        "erosion"
    );
    let components = Components::of(eroded.view());
    let (labels, count) = (components.labels(), components.count());
    let theirs_labels = read_le(&labels_path, i32::from_le_bytes);
    assert!(
        labels.iter().map(|&l| l as i32).eq(theirs_labels),
        "label arrays (numbering) differ"
    );
    assert_eq!(count as u64, got["count"].as_u64().unwrap());
    let candidates = candidates_from_mask(volume, mask).unwrap();
    let irc: Vec<_> = candidates.iter().map(|c| c.center_irc).collect();
    let xyz: Vec<_> = candidates.iter().map(|c| c.center_xyz).collect();
    let d_xyz = max_diff(&xyz, &book_centres(dir.path(), "xyz"));
    println!("{count} components, voxel centres equal; world centres differ by ≤ {d_xyz:e} mm");
    assert_eq!(
        irc,
        book_centres(dir.path(), "irc"),
        "voxel centres, to the bit"
    );
    assert!(d_xyz <= CENTRE_TOLERANCE);
    count
}

#[test]
fn components_of_a_thresholded_synthetic_scan_match_scipy() {
    let scan = generate_series(11, 0, Preset::Tiny).volume;
    // Soft tissue and denser: the body, vessels, nodules and plaques, many
    // touching the scan's edges, as separate and merging components.
    let mask: Vec<bool> = scan.voxels.iter().map(|&v| v > -350).collect();
    let count = check_components_against_scipy(&scan, &mask);
    assert!(count > 3, "only {count} components: a weak test");
}

#[test]
fn components_of_a_noisy_mask_match_scipy() {
    // Dense noise: after erosion, many small components of odd shapes
    // whose provisional labels merge (U shapes, spirals), on every border;
    // HU over the whole int16-ish range so both clips act.
    let shape = [17usize, 23, 29];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n: usize = shape.iter().product();
    let mask: Vec<bool> = (0..n).map(|_| next() % 100 < 82).collect();
    let hu: Vec<i16> = (0..n).map(|_| (next() % 5001) as i16 - 2500).collect();
    let geometry = generate_series(3, 1, Preset::Tiny).volume.geometry;
    let volume = Volume::new(shape, hu, geometry).unwrap();
    let count = check_components_against_scipy(&volume, &mask);
    assert!(count > 50, "only {count} components: a weak test");
}

/// The book's `segmentCt` and `getitem_fullSlice`, transcribed (its
/// DataLoader's batches of 4, in order), over scripts/unet_model.py's
/// `UNetWrapper` with the weights Rust saved; writes P per voxel.
const BOOK_SEGMENT_CT: &str = r#"
import torch
from safetensors.torch import load_file
from unet_model import UNetWrapper

def getitem_fullSlice(slice_ndx, contextSlices_count=3):
    ct_t = torch.zeros((contextSlices_count * 2 + 1, shape[1], shape[2]))
    start_ndx = slice_ndx - contextSlices_count
    end_ndx = slice_ndx + contextSlices_count + 1
    for i, context_ndx in enumerate(range(start_ndx, end_ndx)):
        context_ndx = max(context_ndx, 0)
        context_ndx = min(context_ndx, hu_a.shape[0] - 1)
        ct_t[i] = torch.from_numpy(hu_a[context_ndx].astype(np.float32))
    ct_t.clamp_(-1000, 1000)
    return ct_t

seg_model = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True, batch_norm=True, up_mode="upconv")
missing, unexpected = seg_model.load_state_dict(load_file(cfg["weights"]), strict=False)
assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
seg_model.eval()
with torch.no_grad():  # segmentCt, its DataLoader's batches of 4 in order
    output_a = np.zeros_like(hu_a, dtype=np.float32)
    for start in range(0, shape[0], 4):
        slice_ndx_list = list(range(start, min(start + 4, shape[0])))
        input_g = torch.stack([getitem_fullSlice(s) for s in slice_ndx_list])
        prediction_g = seg_model(input_g)
        for i, slice_ndx in enumerate(slice_ndx_list):
            output_a[slice_ndx] = prediction_g[i].cpu().numpy()
    mask_a = output_a > 0.5
    mask_a = ndimage.binary_erosion(mask_a, iterations=1)
output_a.astype("<f4").tofile(cfg["out"])
_, n = group(mask_a)
print(json.dumps(dict(count=int(n))))
"#;

/// A U-Net with the book's architecture, its BatchNorm statistics moved
/// off their defaults by training-mode passes, and its last bias shifted so
/// that ~3% of `volume`'s voxels come out above 0.5 (an untrained model's
/// are all below: a constant mask would test nothing); saved where Python
/// reads it.
fn unet(weights: &Path, volume: &Volume) -> (VarStore, UNet) {
    tch::manual_seed(17);
    let vs = VarStore::new(Device::Cpu);
    let model = UNet::new(&vs.root(), &UNetConfig::default());
    tch::no_grad(|| {
        for _ in 0..5 {
            let x = Tensor::randn([2, 7, 64, 64], (Kind::Float, Device::Cpu)) * 400.0 - 500.0;
            let _ = model.forward_t(&x, true);
        }
    });
    let mut p = segment_probabilities(&model, volume, SegmentOptions::default()).unwrap();
    p.sort_by(f32::total_cmp);
    let q = f64::from(p[p.len() * 97 / 100]).clamp(1e-6, 1.0 - 1e-6);
    let mut bias = vs.variables()["unet.last.bias"].shallow_clone();
    tch::no_grad(|| bias -= (q / (1.0 - q)).ln());
    vs.save(weights).unwrap();
    (vs, model)
}

/// Runs ours and the book's `segmentCt` (batch 4, as its default) on
/// `volume`; checks the probabilities, the masks, and the candidates the
/// book groups from its mask against ours from the same mask.
fn check_segmentation_against_the_book(volume: &Volume, batch_size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("seg.safetensors");
    let (_vs, model) = unet(&weights, volume);
    let out = dir.path().join("output.raw");
    let cfg = config(dir.path(), volume, json!({"weights": weights, "out": out}));
    let script = format!("{BOOK_PRELUDE}{BOOK_SEGMENT_CT}");
    let got = run_python(&script, &[cfg.as_os_str()]);
    let theirs = read_le(&out, f32::from_le_bytes);
    let options = SegmentOptions {
        batch_size,
        ..SegmentOptions::default()
    };
    let ours = segment_probabilities(&model, volume, options).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let max_p = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mask = segment_scan(&model, volume, options).unwrap();
    let theirs_mask: Vec<bool> = theirs.iter().map(|&p| p > MASK_THRESHOLD).collect();
    let mut disagree = 0;
    for (k, (&m, &p)) in mask.iter().zip(&theirs).enumerate() {
        if m != (p > MASK_THRESHOLD) {
            assert!(
                (p - 0.5).abs() < NEAR_THRESHOLD,
                "voxel {k}: book P {p}, ours {}",
                ours[k]
            );
            disagree += 1;
        }
    }
    let positive = theirs_mask.iter().filter(|&&m| m).count();
    println!(
        "{:?}: P differs by ≤ {max_p:e}; {positive} voxels > 0.5, {disagree} masks disagree",
        volume.shape
    );
    assert!(
        positive > 0 && positive < mask.len(),
        "a constant mask tests little"
    );
    // The book's grouping of its own mask, against ours of the same mask.
    let candidates = candidates_from_mask(volume, &theirs_mask).unwrap();
    assert_eq!(candidates.len() as u64, got["count"].as_u64().unwrap());
    let irc: Vec<_> = candidates.iter().map(|c| c.center_irc).collect();
    assert_eq!(
        irc,
        book_centres(dir.path(), "irc"),
        "voxel centres, to the bit"
    );
    let xyz: Vec<_> = candidates.iter().map(|c| c.center_xyz).collect();
    assert!(max_diff(&xyz, &book_centres(dir.path(), "xyz")) <= CENTRE_TOLERANCE);
}

#[test]
fn segment_scan_matches_the_books_segment_ct() {
    let scan = generate_series(5, 2, Preset::Tiny).volume;
    // Batches of 3 against the book's 4: the batching must not show.
    check_segmentation_against_the_book(&scan, 3);
}

#[test]
fn scans_thinner_than_the_context_segment_with_clamped_slices() {
    let scan = generate_series(5, 2, Preset::Tiny).volume;
    let plane = scan.shape[1] * scan.shape[2];
    for slices in [1, 2, 5] {
        let first = scan.shape[0] / 2;
        let voxels = scan.voxels[first * plane..(first + slices) * plane].to_vec();
        let shape = [slices, scan.shape[1], scan.shape[2]];
        let thin = Volume::new(shape, voxels, scan.geometry).unwrap();
        check_segmentation_against_the_book(&thin, 4);
    }
}

/// Speed on a LUNA-sized synthetic scan, at 2 threads: fp32 contiguous
/// against bf16 channels-last. Run by hand:
/// `cargo test --release -p train --test train segment_scan_speed -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check: ~1 minute a mode"]
fn segment_scan_speed_on_a_luna_sized_scan() {
    tch::set_num_threads(2);
    let scan = generate_series(1, 0, Preset::Luna).volume;
    let modes = [
        (Precision::Fp32, MemoryFormat::Contiguous),
        (Precision::Fp32, MemoryFormat::ChannelsLast),
        (Precision::Bf16, MemoryFormat::ChannelsLast),
    ];
    for (precision, memory_format) in modes {
        let compute = ComputeConfig {
            precision,
            memory_format,
        };
        tch::manual_seed(1); // the same weights in every mode
        let vs = VarStore::new(Device::Cpu);
        let model = UNet::new(&vs.root(), &UNetConfig::default());
        prepare_weights(&vs, compute);
        let options = SegmentOptions {
            batch_size: 4,
            compute,
        };
        let start = Instant::now();
        let mask = segment_scan(&model, &scan, options).unwrap();
        let seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let candidates = candidates_from_mask(&scan, &mask).unwrap();
        println!(
            "{:?} {}: segment_scan {seconds:.1} s ({:.0} ms a slice), candidates_from_mask {:.2} s ({} components)",
            scan.shape,
            compute.describe(),
            seconds * 1e3 / scan.shape[0] as f64,
            start.elapsed().as_secs_f64(),
            candidates.len()
        );
    }
}
