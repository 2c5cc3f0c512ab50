//! The synthetic dataset: determinism, LUNA layout, and nodules where the
//! class-1 candidates say.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use luna_synth::{
    generate, generate_series, is_malignant, Preset, SynthError, SynthOptions,
    ANNOTATIONS_WITH_MALIGNANCY_CSV, MALIGNANT_BUMP_MM, MALIGNANT_DIAMETER_MM, UID_PREFIX,
};
use shared::crop::{crop_candidate, CROP_SHAPE, CROP_VOXELS};
use shared::luna::{
    find_series, load_candidates, read_annotations_csv, read_annotations_with_malignancy_csv,
    read_candidates_csv, ANNOTATIONS_WITH_MALIGNANCY_HEADER,
};
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
    // 3 series × (.mhd + .raw) + 3 CSVs
    assert_eq!(fa.len(), 9);
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

/// The fields of a CSV line, quotes respected (`"[4, 2]"` is one field).
fn fields(line: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let record = reader.records().next().unwrap().unwrap();
    record.iter().map(str::to_owned).collect()
}

#[test]
fn malignancy_csv_matches_annotations_row_for_row_and_follows_the_rule() {
    let (dir, _, _) = demo();
    let mal_text = fs::read_to_string(dir.path().join(ANNOTATIONS_WITH_MALIGNANCY_CSV)).unwrap();
    let ann_text = fs::read_to_string(dir.path().join("annotations.csv")).unwrap();
    let mut mal_lines = mal_text.lines();
    assert_eq!(
        mal_lines.next().unwrap(),
        "seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool,mal_details,\
         bboxLowX,bboxLowY,bboxLowZ,bboxHighX,bboxHighY,bboxHighZ,len_mal_details"
    );
    assert_eq!(
        ANNOTATIONS_WITH_MALIGNANCY_HEADER.join(","),
        mal_text.lines().next().unwrap()
    );
    let ann_lines: Vec<&str> = ann_text.lines().skip(1).collect();
    let mal_lines: Vec<&str> = mal_lines.collect();
    assert_eq!(mal_lines.len(), ann_lines.len());
    assert!(ann_lines.len() > 30, "{} annotations", ann_lines.len());
    let mut malignant = 0;
    for (mal, ann) in mal_lines.iter().zip(&ann_lines) {
        // The same seriesuid, coordinates and diameter, as the same text.
        assert!(mal.starts_with(&format!("{ann},")), "{mal}\nvs {ann}");
        let f = fields(mal);
        assert_eq!(f.len(), 14, "{mal}");
        let number = |k: usize| f[k].parse::<f64>().unwrap();
        let is_true = match f[5].as_str() {
            "True" => true,
            "False" => false,
            other => panic!("mal_bool {other:?}"),
        };
        malignant += usize::from(is_true);
        let details = f[6]
            .strip_prefix('[')
            .and_then(|d| d.strip_suffix(']'))
            .unwrap();
        let ratings: Vec<u8> = details.split(", ").map(|r| r.parse().unwrap()).collect();
        assert_eq!(f[13], ratings.len().to_string());
        assert!(ratings.iter().all(|r| (1..=5).contains(r)), "{mal}");
        let mean = ratings.iter().map(|r| f64::from(*r)).sum::<f64>() / ratings.len() as f64;
        assert_eq!(mean >= 3.0, is_true, "{mal}");
        // What the test can check of the rule from the file alone: large
        // nodules are malignant, and those too small for 0.2 mm bumps are not.
        let diameter = number(4);
        if diameter >= MALIGNANT_DIAMETER_MM {
            assert!(is_true, "{mal}");
        }
        if diameter < 4.4 {
            assert!(!is_true, "{mal}");
        }
        for k in 0..3 {
            let (centre, low, high) = (number(1 + k), number(7 + k), number(10 + k));
            assert!(low < centre && centre < high, "{mal}");
            let width = high - low;
            assert!(
                (0.75 * diameter..1.3 * diameter).contains(&width),
                "box {width} mm for {diameter} mm: {mal}"
            );
        }
    }
    let share = malignant as f64 / mal_lines.len() as f64;
    assert!(
        (0.2..0.5).contains(&share),
        "{malignant} of {} malignant",
        mal_lines.len()
    );

    // The reader gives back the generator's rows.
    let rows =
        read_annotations_with_malignancy_csv(&dir.path().join(ANNOTATIONS_WITH_MALIGNANCY_CSV))
            .unwrap();
    let annotations = read_annotations_csv(&dir.path().join("annotations.csv")).unwrap();
    assert_eq!(rows.len(), annotations.len());
    for (r, a) in rows.iter().zip(&annotations) {
        assert_eq!(
            (&r.series_uid, r.center_xyz, r.diameter_mm),
            (&a.series_uid, a.center_xyz, a.diameter_mm)
        );
    }
    assert_eq!(rows.iter().filter(|r| r.malignant).count(), malignant);
}

#[test]
fn malignancy_follows_the_documented_rule_on_the_nodules_features() {
    let (mut by_size, mut by_margin_alone, mut benign) = (0, 0, 0);
    for index in 0..12 {
        let series = generate_series(7, index, Preset::Tiny);
        assert_eq!(series.malignancy.len(), series.annotations.len());
        for (m, a) in series.malignancy.iter().zip(&series.annotations) {
            assert_eq!(m.diameter_mm, a.diameter_mm);
            let expected = m.diameter_mm >= MALIGNANT_DIAMETER_MM || m.bump_mm >= MALIGNANT_BUMP_MM;
            assert_eq!(m.malignant, expected, "{m:?}");
            assert_eq!(m.malignant, is_malignant(m.diameter_mm, m.bump_mm));
            // bump = lobulation (< 0.08) × mean semi-axis (< 1.12 × radius).
            assert!(m.bump_mm >= 0.0 && m.bump_mm < 0.08 * 1.12 * 0.5 * m.diameter_mm);
            if !m.malignant {
                benign += 1;
            } else if m.diameter_mm >= MALIGNANT_DIAMETER_MM {
                by_size += 1;
            } else {
                by_margin_alone += 1;
            }
        }
    }
    // Both signs make malignant nodules, and benign ones stay the majority.
    assert!(
        by_size >= 3 && by_margin_alone >= 3,
        "{by_size} {by_margin_alone}"
    );
    assert!(benign > by_size + by_margin_alone, "{benign} benign");
}
