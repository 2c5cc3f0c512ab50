//! The synthetic dataset: determinism, LUNA layout, and nodules where the
//! class-1 candidates say.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use luna_synth::{generate, generate_series, Preset, SynthError, SynthOptions, UID_PREFIX};
use shared::crop::{crop_candidate, CROP_SHAPE, CROP_VOXELS};
use shared::luna::{find_series, load_candidates, read_annotations_csv, read_candidates_csv};
use shared::metaimage::read_volume;
use shared::volume::Volume;

fn options(out: &Path, series: usize, seed: u64) -> SynthOptions {
    SynthOptions {
        out: out.to_owned(),
        series,
        seed,
        preset: Preset::Tiny,
    }
}

fn all_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().to_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn same_seed_gives_byte_identical_files_and_another_seed_does_not() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let sa = generate(&options(a.path(), 3, 11), &|_, _| {}).unwrap();
    let sb = generate(&options(b.path(), 3, 11), &|_, _| {}).unwrap();
    generate(&options(c.path(), 3, 12), &|_, _| {}).unwrap();
    assert_eq!(sa, sb);
    let (fa, fb, fc) = (
        all_files(a.path()),
        all_files(b.path()),
        all_files(c.path()),
    );
    // 3 series × (.mhd + .raw) + 2 CSVs
    assert_eq!(fa.len(), 8);
    assert!(fa == fb, "same seed must reproduce every byte");
    assert_ne!(
        fa.get(Path::new("candidates.csv")),
        fc.get(Path::new("candidates.csv"))
    );
    let bytes: u64 = fa.values().map(|v| v.len() as u64).sum();
    assert_eq!(sa.bytes, bytes);
}

#[test]
fn zero_series_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        generate(&options(dir.path(), 0, 1), &|_, _| {}),
        Err(SynthError::NoSeries)
    ));
}

/// The tiny demo dataset, generated once per test binary run.
fn demo() -> &'static (tempfile::TempDir, luna_synth::SynthSummary, Vec<usize>) {
    static DEMO: std::sync::OnceLock<(tempfile::TempDir, luna_synth::SynthSummary, Vec<usize>)> =
        std::sync::OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let calls = std::sync::Mutex::new(Vec::new());
        let started = std::time::Instant::now();
        let summary = generate(&options(dir.path(), 12, 7), &|done, total| {
            assert_eq!(total, 12);
            calls.lock().unwrap().push(done);
        })
        .unwrap();
        eprintln!("12 tiny series in {:?}: {summary:?}", started.elapsed());
        (dir, summary, calls.into_inner().unwrap())
    })
}

#[test]
fn dataset_has_luna_layout_and_parses_into_the_book_list() {
    let (dir, summary, calls) = demo();
    let mut calls = calls.clone();
    calls.sort();
    assert_eq!(calls, (1..=12).collect::<Vec<_>>());

    let present = find_series(dir.path()).unwrap();
    assert_eq!(present.len(), 12);
    let subsets: std::collections::BTreeSet<_> = present
        .values()
        .map(|p| p.parent().unwrap().file_name().unwrap().to_owned())
        .collect();
    assert_eq!(subsets.len(), 3, "12 series spread over subset0..2");
    assert!(present.keys().all(|uid| uid.starts_with(UID_PREFIX)));

    let list = load_candidates(
        &dir.path().join("candidates.csv"),
        &dir.path().join("annotations.csv"),
        &present,
    )
    .unwrap();
    assert_eq!(list.missing_series, 0);
    assert_eq!(list.candidates.len(), summary.candidates);
    let positives = list.candidates.iter().filter(|c| c.is_nodule).count();
    assert_eq!(positives, summary.positives);
    assert!(
        summary.candidates >= 12 * 60 && summary.candidates <= 12 * 121,
        "{summary:?}"
    );
    let ratio = summary.candidates as f64 / positives as f64;
    assert!(
        (10.0..40.0).contains(&ratio),
        "about 1 positive in 20, got 1 in {ratio:.1}"
    );
    // Every positive lies within d/4 of its annotation, so the merge gives it a diameter;
    // no negative sits inside a nodule.
    assert!(list
        .candidates
        .iter()
        .all(|c| c.is_nodule == (c.diameter_mm > 0.0)));
    let annotations = read_annotations_csv(&dir.path().join("annotations.csv")).unwrap();
    assert!(annotations
        .iter()
        .all(|a| (3.0..=30.0).contains(&a.diameter_mm)));
}

/// Mean HU of the box of (2h+1) voxels per axis around `centre` in the crop
/// (the crop's centre unless it was shifted at a volume edge), cut to the crop.
fn core_mean(crop: &[i16], centre: [usize; 3], half: [usize; 3]) -> f64 {
    let lo = |k: usize| centre[k].saturating_sub(half[k]);
    let hi = |k: usize| (centre[k] + half[k]).min(CROP_SHAPE[k] - 1);
    let (mut sum, mut n) = (0.0, 0.0);
    for i in lo(0)..=hi(0) {
        for r in lo(1)..=hi(1) {
            for c in lo(2)..=hi(2) {
                sum += f64::from(crop[(i * CROP_SHAPE[1] + r) * CROP_SHAPE[2] + c]);
                n += 1.0;
            }
        }
    }
    sum / n
}

#[test]
fn every_positive_crop_has_a_bright_core_and_scans_read_back_exactly() {
    let (dir, _, _) = demo();
    let present = find_series(dir.path()).unwrap();
    let list = load_candidates(
        &dir.path().join("candidates.csv"),
        &dir.path().join("annotations.csv"),
        &present,
    )
    .unwrap();
    let mut volumes: BTreeMap<String, Volume> = BTreeMap::new();
    let mut crop = vec![0i16; CROP_VOXELS];
    let (mut pos_cores, mut neg_cores) = (Vec::new(), Vec::new());
    let mut flipped = 0;
    for c in &list.candidates {
        let v = volumes
            .entry(c.series_uid.clone())
            .or_insert_with(|| read_volume(&present[&c.series_uid]).unwrap());
        let irc = v.geometry.xyz_to_irc(c.center_xyz).unwrap();
        let start = crop_candidate(v, irc, &mut crop).unwrap();
        let centre = [0, 1, 2].map(|k| irc[k] as usize - start[k]);
        if c.is_nodule {
            // 5×5×5 where the nodule spans it; thinner along z at thick slices.
            let half = [
                0.25 * c.diameter_mm / v.geometry.spacing[2],
                0.25 * c.diameter_mm / v.geometry.spacing[0],
                0.25 * c.diameter_mm / v.geometry.spacing[1],
            ]
            .map(|h| (h.floor() as usize).min(2));
            let core = core_mean(&crop, centre, half);
            assert!(
                core > -200.0,
                "{} at {:?} (d {}): core mean {core}",
                c.series_uid,
                c.center_xyz,
                c.diameter_mm
            );
            pos_cores.push(core);
        } else {
            neg_cores.push(core_mean(&crop, centre, [2, 2, 2]));
        }
    }
    for v in volumes.values() {
        flipped += usize::from(v.geometry.direction[0][0] < 0.0);
    }
    // Hard negatives (vessels, junctions, soft tissue) are bright at the centre
    // too, so "bright core" alone cannot separate the classes.
    let bright = neg_cores.iter().filter(|m| **m > -500.0).count();
    assert!(
        bright * 5 > neg_cores.len(),
        "{bright} of {} negatives bright",
        neg_cores.len()
    );
    assert!(pos_cores.len() > 12);
    assert!(
        flipped > 0 && flipped < 12,
        "some, not all, series have flipped x/y: {flipped}"
    );

    // The reader sees exactly the generator's voxels, unclipped.
    let series = generate_series(7, 4, Preset::Tiny);
    assert!(
        series.volume.voxels.iter().any(|v| *v < -1000),
        "raw voxels go below LUNA's HU window"
    );
    assert_eq!(volumes[&series.uid], series.volume);
    let rows = read_candidates_csv(&dir.path().join("candidates.csv")).unwrap();
    let mine: Vec<_> = rows
        .into_iter()
        .filter(|r| r.series_uid == series.uid)
        .collect();
    assert_eq!(mine, series.candidates);
}

#[test]
fn pleural_plaques_look_like_tissue_lie_clear_of_nodules_and_stay_out_of_their_masks() {
    let mut plaques = 0;
    for index in 0..8 {
        let series = generate_series(7, index, Preset::Tiny);
        let volume = &series.volume;
        let nodules: Vec<[f64; 3]> = series.annotations.iter().map(|a| a.center_xyz).collect();
        let mask = shared::nodule_mask::scan_annotation_mask(volume, &nodules).unwrap();
        let [_, rows, cols] = volume.shape;
        for &xyz in &series.lookalikes_xyz {
            plaques += 1;
            for a in &series.annotations {
                let d = (0..3)
                    .map(|k| (a.center_xyz[k] - xyz[k]).powi(2))
                    .sum::<f64>();
                assert!(
                    d.sqrt() > 0.5 * a.diameter_mm + 6.0,
                    "plaque {xyz:?} on a nodule"
                );
            }
            let irc = volume.geometry.xyz_to_irc(xyz).unwrap();
            let at = (irc[0] as usize * rows + irc[1] as usize) * cols + irc[2] as usize;
            assert!(volume.voxels[at] > -400, "plaque {xyz:?} is not tissue");
            assert!(!mask[at], "a nodule's mask reaches plaque {xyz:?}");
        }
    }
    assert!(plaques >= 16, "{plaques} plaques in 8 series");
}
