//! Tests: the official script's outputs on the fixture cases, each rule on
//! tiny hand-made inputs, and the input errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::froc::{self, interp, linspace, roc_curve};
use super::matching::{self, hits, match_marks, most_suspicious};
use super::*;
use shared::luna::table::{Reason, TableError};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/luna16");

const CASES: [&str; 10] = [
    "cap_over_100",
    "cap_ties",
    "diameter_minus_one",
    "double_hits",
    "excluded_hits",
    "no_false_positives",
    "random_mixed",
    "reordered_columns",
    "scan_without_marks",
    "two_nodule_mark",
];

struct Case {
    annotations: Vec<Finding>,
    excluded: Vec<Finding>,
    marks: Vec<Mark>,
    scans: Vec<String>,
    expected: Value,
    cad_analysis: String,
}

fn load(case: &str) -> Case {
    let dir = Path::new(FIXTURES).join(case);
    let text = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    Case {
        annotations: read_annotations(&dir.join("annotations.csv")).unwrap(),
        excluded: read_findings(&dir.join("annotations_excluded.csv")).unwrap(),
        marks: read_marks(&dir.join("submission.csv")).unwrap(),
        scans: read_seriesuids(&dir.join("seriesuids.csv")).unwrap(),
        expected: serde_json::from_str(&text("expected.json")).unwrap(),
        cad_analysis: text("CADAnalysis.txt"),
    }
}

fn score_case(case: &Case, bootstrap: Option<Bootstrap>) -> Score {
    score(
        &case.annotations,
        &case.excluded,
        &case.marks,
        &case.scans,
        bootstrap,
    )
    .unwrap()
}

/// A float written by Python's `repr`, parsed exactly.
fn exact(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn fixtures_match_the_official_script() {
    for name in CASES {
        let case = load(name);
        let s = score_case(&case, None);
        let e = &case.expected;
        let cpm = e["cpm"].as_f64().unwrap();
        assert!((s.cpm - cpm).abs() < 1e-6, "{name}: cpm {} vs {cpm}", s.cpm);
        // Bit for bit, read from the shortest round-trip strings (Rust's
        // parser is correctly rounded; serde_json's default one is not).
        assert_eq!(s.cpm, exact(&e["cpm_repr"]), "{name}: cpm");
        for (rate, got) in FP_RATES.iter().zip(s.sensitivities) {
            let want = exact(&e["sensitivities_repr"][rate.to_string()]);
            assert_eq!(got, want, "{name}: sensitivity at {rate}");
        }
        let c = &e["counts"];
        let count = |k: &str| c[k].as_u64().unwrap() as usize;
        assert_eq!(s.detected, count("true_positives"), "{name}");
        assert_eq!(s.false_positives, count("false_positives"), "{name}");
        assert_eq!(s.missed, count("false_negatives"), "{name}");
        assert_eq!(s.marks, count("candidates"), "{name}");
        assert_eq!(s.nodules, count("nodules"), "{name}");
        assert_eq!(s.ignored_excluded, count("ignored_excluded"), "{name}");
        assert_eq!(
            s.ignored_double_hits,
            count("ignored_double_hits"),
            "{name}"
        );
        assert_eq!(s.scans, count("scans"), "{name}");
        let shared = e["marks_hitting_two_nodules_messages"].as_u64().unwrap() as usize;
        assert_eq!(s.shared_hits, shared, "{name}");

        // The curve itself, point for point (scikit-learn's thresholds and
        // drop_intermediate included).
        let exacts = |v: &Value| v.as_array().unwrap().iter().map(exact).collect::<Vec<_>>();
        assert_eq!(s.froc.fps_per_scan, exacts(&e["froc_fps_repr"]), "{name}");
        assert_eq!(s.froc.sensitivity, exacts(&e["froc_sens_repr"]), "{name}");

        assert_eq!(cad_analysis(&s, "submission"), case.cad_analysis, "{name}");
    }
}

#[test]
fn fixture_thresholds_match_the_official_froc_file() {
    // froc_submission.txt: fps, sensitivity, threshold per point, "%.9f".
    for name in CASES {
        let s = score_case(&load(name), None);
        let text =
            std::fs::read_to_string(Path::new(FIXTURES).join(name).join("froc_submission.txt"))
                .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), s.froc.thresholds.len(), "{name}");
        for (line, t) in lines.iter().zip(&s.froc.thresholds) {
            let official = line.rsplit(',').next().unwrap();
            assert_eq!(official, format!("{t:.9}"), "{name}");
        }
    }
}

#[test]
fn fixture_specific_counts() {
    let s = score_case(&load("reordered_columns"), None);
    assert_eq!(s.unknown_scan_marks, 7);

    let s = score_case(&load("scan_without_marks"), None);
    assert_eq!(
        s.scans_without_marks,
        ["1.3.6.1.4.1.9328.3283438", "1.3.6.1.4.1.9328.3299276"]
    );
    assert_eq!(s.scans, 6);

    // 115 marks → 90 (20 tied at the 101st are all dropped); 101 → 100.
    let s = score_case(&load("cap_ties"), None);
    assert_eq!(s.marks_over_cap, 25 + 1);
    let s = score_case(&load("cap_over_100"), None);
    assert_eq!(s.marks_over_cap, 60);
}

#[test]
fn bootstrap_on_fixtures() {
    let case = load("random_mixed");
    let config = Bootstrap { n: 300, seed: 7 };
    let a = score_case(&case, Some(config)).bootstrap.unwrap();
    let b = score_case(&case, Some(config)).bootstrap.unwrap();
    assert_eq!(a, b, "same seed, same result");
    let c = score_case(&case, Some(Bootstrap { n: 300, seed: 8 }))
        .bootstrap
        .unwrap();
    assert_ne!(
        a.sensitivities, c.sensitivities,
        "another seed, other draws"
    );

    let point = score_case(&case, None);
    let official = &case.expected["official_bootstrap_numpy_seed_1"];
    for (k, iv) in a.sensitivities.iter().enumerate() {
        assert!(iv.lower <= iv.mean && iv.mean <= iv.upper, "{iv:?}");
        // Not numpy's draws, but the same statistic: near the point estimate
        // and near the script's own bootstrap mean.
        assert!((iv.mean - point.sensitivities[k]).abs() < 0.1, "{iv:?}");
        let theirs = official[FP_RATES[k].to_string()]["mean"].as_f64().unwrap();
        assert!((iv.mean - theirs).abs() < 0.05, "{} vs {theirs}", iv.mean);
    }
    assert_eq!(a.band.len(), froc::BAND_POINTS);
    assert_eq!(a.band_fps[0], 0.125);
    assert_eq!(a.band_fps[froc::BAND_POINTS - 1], 8.0);
    for iv in &a.band {
        assert!(iv.lower <= iv.upper);
    }
}

#[test]
fn bootstrap_survives_resamples_without_ranked_entries() {
    // The official script crashes here: some resamples draw only scans
    // whose nodules were all missed.
    let case = load("scan_without_marks");
    let s = score_case(&case, Some(Bootstrap { n: 500, seed: 1 }));
    for iv in s.bootstrap.unwrap().sensitivities {
        assert!(iv.mean.is_finite() && iv.lower <= iv.upper);
    }
}

// ---- hand-made inputs ------------------------------------------------------

fn finding(uid: &str, center: [f64; 3], diameter_mm: f64) -> Finding {
    Finding {
        seriesuid: uid.to_string(),
        center,
        diameter_mm,
    }
}

fn mark(uid: &str, center: [f64; 3], probability: f64) -> Mark {
    Mark {
        seriesuid: uid.to_string(),
        center,
        probability,
    }
}

fn uids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn hit_is_strictly_inside_the_radius() {
    let n = finding("a", [0.0, 0.0, 0.0], 6.0);
    assert!(hits(&n, &mark("a", [2.999, 0.0, 0.0], 1.0)));
    assert!(!hits(&n, &mark("a", [3.0, 0.0, 0.0], 1.0)), "on the sphere");
    assert!(!hits(&n, &mark("a", [0.0, 0.0, -3.0], 1.0)));
    // squared distance 2² + 2² + 1² = 9 = 3²: on the sphere again
    assert!(!hits(&n, &mark("a", [2.0, 2.0, 1.0], 1.0)));
    assert!(hits(&n, &mark("a", [2.0, 2.0, 0.9], 1.0)));
}

#[test]
fn negative_diameter_means_ten_mm() {
    let n = finding("a", [10.0, 20.0, 30.0], -1.0);
    assert!(hits(&n, &mark("a", [14.99, 20.0, 30.0], 1.0)));
    assert!(!hits(&n, &mark("a", [15.0, 20.0, 30.0], 1.0)));
    let zero = finding("a", [0.0; 3], 0.0);
    assert!(!hits(&zero, &mark("a", [0.0; 3], 1.0)), "0 mm stays 0 mm");
}

#[test]
fn cap_keeps_marks_strictly_above_the_101st() {
    let make = |probs: &[f64]| -> Vec<Mark> {
        probs
            .iter()
            .map(|&p| mark("a", [0.0; 3], p))
            .collect::<Vec<_>>()
    };
    fn refs(m: &[Mark]) -> Vec<&Mark> {
        m.iter().collect()
    }

    // exactly 100, all tied: untouched
    let m = make(&[0.5; 100]);
    assert_eq!(most_suspicious(&refs(&m)).len(), 100);

    // 101 distinct: the lowest goes, order kept
    let probs: Vec<f64> = (0..101).map(|i| ((i * 37) % 101) as f64).collect();
    let m = make(&probs);
    let kept = most_suspicious(&refs(&m));
    assert_eq!(kept.len(), 100);
    assert!(kept.iter().all(|k| k.probability > 0.0));
    let kept_probs: Vec<f64> = kept.iter().map(|k| k.probability).collect();
    let expected: Vec<f64> = probs.iter().copied().filter(|&p| p > 0.0).collect();
    assert_eq!(kept_probs, expected);

    // 95 above, 10 tied straddling the 100th/101st: all tied dropped
    let mut probs: Vec<f64> = (0..95).map(|i| 1.0 + i as f64).collect();
    probs.extend([0.5; 10]);
    let m = make(&probs);
    assert_eq!(most_suspicious(&refs(&m)).len(), 95);

    // 150 tied: nothing survives
    let m = make(&[0.5; 150]);
    assert!(most_suspicious(&refs(&m)).is_empty());
}

#[test]
fn cap_applies_per_scan_before_matching() {
    let n = finding("a", [0.0; 3], 10.0);
    let mut marks: Vec<Mark> = (0..100)
        .map(|i| mark("a", [100.0, 0.0, 0.0], 0.5 + i as f64 / 1000.0))
        .collect();
    marks.push(mark("a", [0.0; 3], 0.1)); // the hit is the 101st
    marks.push(mark("b", [0.0; 3], 0.1)); // another scan, unaffected
    let m = match_marks(&[n], &[], &marks, &uids(&["a", "b"]));
    assert_eq!(m.counts.detected, 0);
    assert_eq!(m.counts.marks, 101);
    assert_eq!(m.counts.marks_over_cap, 1);
    assert_eq!(m.counts.false_positives, 101);
}

#[test]
fn double_hits_count_once_at_the_highest_probability() {
    let n = finding("a", [0.0; 3], 10.0);
    let marks = [
        mark("a", [1.0, 0.0, 0.0], 0.3),
        mark("a", [0.0, 1.0, 0.0], 0.9),
        mark("a", [0.0, 0.0, 1.0], 0.6),
        mark("a", [50.0, 0.0, 0.0], 0.2),
    ];
    let m = match_marks(&[n], &[], &marks, &uids(&["a"]));
    assert_eq!(m.counts.detected, 1);
    assert_eq!(m.counts.ignored_double_hits, 2);
    assert_eq!(m.counts.false_positives, 1);
    let tp: Vec<_> = m.entries.iter().filter(|e| e.is_nodule).collect();
    assert_eq!(tp.len(), 1);
    assert_eq!(tp[0].probability, 0.9);
}

#[test]
fn a_mark_inside_two_nodules_detects_both() {
    let nodules = [
        finding("a", [0.0; 3], 10.0),
        finding("a", [6.0, 0.0, 0.0], 10.0),
    ];
    let marks = [mark("a", [3.0, 0.0, 0.0], 0.7)];
    let m = match_marks(&nodules, &[], &marks, &uids(&["a"]));
    assert_eq!(m.counts.detected, 2);
    assert_eq!(m.counts.shared_hits, 1);
    assert_eq!(m.counts.false_positives, 0);
    assert_eq!(m.counts.ignored_double_hits, 0);
}

#[test]
fn marks_on_excluded_findings_are_ignored() {
    let nodule = finding("a", [0.0; 3], 10.0);
    let excluded = [
        finding("a", [4.0, 0.0, 0.0], 10.0),
        finding("a", [40.0, 0.0, 0.0], -1.0),
    ];
    let marks = [
        mark("a", [2.0, 0.0, 0.0], 0.8), // in the nodule and an excluded finding
        mark("a", [42.0, 0.0, 0.0], 0.9), // excluded only
        mark("a", [38.0, 0.0, 0.0], 0.4), // excluded only
        mark("a", [90.0, 0.0, 0.0], 0.1), // nothing
    ];
    let m = match_marks(&[nodule], &excluded, &marks, &uids(&["a"]));
    assert_eq!(m.counts.detected, 1);
    assert_eq!(m.counts.ignored_excluded, 2);
    assert_eq!(m.counts.false_positives, 1);
    assert_eq!(m.counts.nodules, 1, "excluded findings are not nodules");
}

#[test]
fn missed_nodules_stay_in_the_denominator() {
    let nodules = [
        finding("a", [0.0; 3], 10.0),
        finding("a", [50.0, 0.0, 0.0], 10.0),
        finding("b", [0.0; 3], 10.0),
        finding("b", [0.0, 50.0, 0.0], 10.0),
    ];
    let marks = [mark("a", [0.0; 3], 0.9), mark("a", [0.0, 0.0, 80.0], 0.5)];
    let s = score(&nodules, &[], &marks, &uids(&["a", "b"]), None).unwrap();
    assert_eq!((s.detected, s.missed, s.nodules), (1, 3, 4));
    assert!(s.sensitivities.iter().all(|&v| v == 0.25));
    assert_eq!(s.cpm, 0.25);
    let m = match_marks(&nodules, &[], &marks, &uids(&["a", "b"]));
    let missed: Vec<_> = m.entries.iter().filter(|e| e.excluded).collect();
    assert_eq!(missed.len(), 3);
    assert!(missed
        .iter()
        .all(|e| e.is_nodule && e.probability == matching::MISSED_PROBABILITY));
}

#[test]
fn fp_rate_divides_by_every_listed_scan() {
    // One TP at 0.9 then 4 FPs at 0.5 on scan "a"; "b".."d" have no marks.
    let nodules = [finding("a", [0.0; 3], 10.0)];
    let mut marks = vec![mark("a", [0.0; 3], 0.9)];
    marks.extend((0..4).map(|i| mark("a", [100.0 + i as f64, 0.0, 0.0], 0.5)));
    let one = score(&nodules, &[], &marks, &uids(&["a"]), None).unwrap();
    let four = score(&nodules, &[], &marks, &uids(&["a", "b", "c", "d"]), None).unwrap();
    assert_eq!(one.froc.fps_per_scan, vec![0.0, 0.0, 4.0]);
    assert_eq!(four.froc.fps_per_scan, vec![0.0, 0.0, 1.0]);
    assert_eq!(four.scans, 4);
    assert!(four.scans_without_marks.is_empty(), "b..d have no nodules");
}

#[test]
fn nodules_and_marks_of_unlisted_scans_are_ignored() {
    let nodules = [finding("a", [0.0; 3], 10.0), finding("z", [0.0; 3], 10.0)];
    let marks = [mark("a", [0.0; 3], 0.9), mark("z", [0.0; 3], 0.9)];
    let s = score(&nodules, &[], &marks, &uids(&["a"]), None).unwrap();
    assert_eq!((s.nodules, s.detected, s.marks), (1, 1, 1));
    assert_eq!(s.unknown_scan_marks, 1);
}

#[test]
fn scans_without_marks_are_listed() {
    let nodules = [finding("a", [0.0; 3], 10.0), finding("b", [0.0; 3], 10.0)];
    let marks = [mark("a", [90.0; 3], 0.9)];
    let s = score(&nodules, &[], &marks, &uids(&["a", "b", "c"]), None).unwrap();
    assert_eq!(s.scans_without_marks, ["b"]);
}

#[test]
fn no_detection_scores_zero_not_nan() {
    let nodules = [finding("a", [0.0; 3], 10.0)];
    let marks = [mark("a", [90.0; 3], 0.9)];
    let s = score(&nodules, &[], &marks, &uids(&["a"]), None).unwrap();
    assert_eq!(s.cpm, 0.0);
    let s = score(&nodules, &[], &[], &uids(&["a"]), None).unwrap();
    assert_eq!(s.cpm, 0.0);
    assert_eq!(s.froc.fps_per_scan, vec![0.0]);
}

#[test]
fn without_false_positives_the_curve_sits_at_zero() {
    let nodules = [
        finding("a", [0.0; 3], 10.0),
        finding("a", [50.0, 0.0, 0.0], 10.0),
    ];
    let marks = [mark("a", [0.0; 3], 0.3)];
    let s = score(&nodules, &[], &marks, &uids(&["a"]), None).unwrap();
    assert!(s.froc.fps_per_scan.iter().all(|&x| x == 0.0));
    assert_eq!(s.cpm, 0.5);
}

#[test]
fn roc_curve_matches_scikit_learn() {
    // scikit-learn's roc_curve docstring example.
    let r = roc_curve(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]);
    assert_eq!(r.fpr, [0.0, 0.0, 0.5, 0.5, 1.0]);
    assert_eq!(r.tpr, [0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!(r.thresholds, [f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);
    // drop_intermediate: the collinear point at threshold 3 goes
    let r = roc_curve(&[true, true, true, false], &[4.0, 3.0, 2.0, 1.0]);
    assert_eq!(r.fpr, [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(r.tpr, [0.0, 1.0 / 3.0, 1.0, 1.0]);
    assert_eq!(r.thresholds, [f64::INFINITY, 4.0, 2.0, 1.0]);
    // ties form one threshold
    let r = roc_curve(
        &[true, false, true, false, true, false],
        &[0.9, 0.9, 0.5, 0.5, 0.1, 0.1],
    );
    assert_eq!(r.thresholds, [f64::INFINITY, 0.9, 0.1]);
    assert_eq!(r.fpr, [0.0, 1.0 / 3.0, 1.0]);
    // a class missing: NaN rates
    let r = roc_curve(&[true, true], &[0.9, 0.1]);
    assert!(r.fpr.iter().all(|v| v.is_nan()));
}

#[test]
fn interp_matches_numpy() {
    let xp = [0.0, 1.0, 1.0, 2.0, 4.0];
    let fp = [0.0, 10.0, 20.0, 30.0, 40.0];
    // np.interp([-1, 0, 0.5, 1, 2, 3, 5], xp, fp)
    let want = [0.0, 0.0, 5.0, 20.0, 30.0, 35.0, 40.0];
    for (x, w) in [-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0].iter().zip(want) {
        assert_eq!(interp(*x, &xp, &fp), w, "x = {x}");
    }
    assert_eq!(interp(3.0, &[0.0], &[0.7]), 0.7);
    assert_eq!(
        interp(4.0, &[0.0, 0.0, 4.0, 4.0], &[0.0, 0.1, 0.2, 0.3]),
        0.3
    );
}

#[test]
fn linspace_matches_numpy() {
    let v = linspace(0.125, 8.0, 10_000);
    // np.linspace(0.125, 8, 10000)[[1, 2, 9998, 9999]]
    assert_eq!(v[1], 0.1257875787578758);
    assert_eq!(v[2], 0.12657515751575157);
    assert_eq!(v[9998], 7.999212421242124);
    assert_eq!(v[9999], 8.0);
}

#[test]
fn bootstrap_of_identical_scans_collapses() {
    // Every scan the same: every resample is the original set.
    let names: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let mut nodules = Vec::new();
    let mut marks = Vec::new();
    for n in &names {
        nodules.push(finding(n, [0.0; 3], 10.0));
        nodules.push(finding(n, [30.0, 0.0, 0.0], 10.0));
        marks.push(mark(n, [0.0; 3], 0.8));
        marks.push(mark(n, [30.0, 0.0, 0.0], 0.3));
        marks.push(mark(n, [90.0, 0.0, 0.0], 0.5));
        marks.push(mark(n, [-90.0, 0.0, 0.0], 0.2));
    }
    let s = score(
        &nodules,
        &[],
        &marks,
        &names,
        Some(Bootstrap { n: 50, seed: 3 }),
    )
    .unwrap();
    let b = s.bootstrap.unwrap();
    for (iv, point) in b.sensitivities.iter().zip(s.sensitivities) {
        assert!((iv.mean - point).abs() < 1e-12, "{iv:?} vs {point}");
        assert_eq!(iv.lower, iv.upper);
    }
    for iv in &b.band {
        assert_eq!(iv.lower, iv.upper);
    }
}

#[test]
fn score_json_has_the_documented_keys() {
    let case = load("excluded_hits");
    let s = score_case(&case, Some(Bootstrap { n: 20, seed: 0 }));
    let json: Value = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    for key in [
        "cpm",
        "nodules",
        "detected",
        "false_positives",
        "ignored_excluded",
        "ignored_double_hits",
        "marks",
        "scans",
    ] {
        assert!(json[key].is_number(), "{key}");
    }
    for rate in ["0.125", "0.25", "0.5", "1", "2", "4", "8"] {
        assert!(json["sensitivities"][rate].is_number(), "{rate}");
        for k in ["mean", "lower", "upper"] {
            assert!(json["bootstrap"]["sensitivities"][rate][k].is_number());
        }
    }
    assert!(json["froc"]["thresholds"][0].is_null(), "+inf as null");
    assert!(
        json["bootstrap"].get("band").is_none(),
        "band kept out of JSON"
    );

    // serde_json's default parser may miss the last bit; compare closely.
    let back: Score = serde_json::from_value(json).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 || (a.is_infinite() && a == b);
    assert!(close(back.cpm, s.cpm));
    assert_eq!(back.froc.thresholds.len(), s.froc.thresholds.len());
    for (a, b) in back.froc.thresholds.iter().zip(&s.froc.thresholds) {
        assert!(close(*a, *b), "{a} vs {b}");
    }
    let (bb, sb) = (back.bootstrap.unwrap(), s.bootstrap.unwrap());
    for (a, b) in bb.sensitivities.iter().zip(&sb.sensitivities) {
        assert!(close(a.mean, b.mean) && close(a.lower, b.lower) && close(a.upper, b.upper));
    }
    assert_eq!((bb.n, bb.seed), (20, 0));
}

#[test]
fn default_scan_list_is_annotations_then_submission() {
    let nodules = [
        finding("b", [0.0; 3], 1.0),
        finding("a", [0.0; 3], 1.0),
        finding("b", [0.0; 3], 1.0),
    ];
    let marks = [mark("c", [0.0; 3], 0.1), mark("a", [0.0; 3], 0.1)];
    assert_eq!(default_scan_list(&nodules, &marks), ["b", "a", "c"]);
}

#[test]
fn score_rejects_what_it_cannot_score() {
    let nodules = [finding("a", [0.0; 3], 10.0)];
    assert_eq!(
        score(&nodules, &[], &[], &[], None),
        Err(ScoreError::NoScans)
    );
    assert_eq!(
        score(&nodules, &[], &[], &uids(&["b"]), None),
        Err(ScoreError::NoNodules { scans: 1 })
    );
    let bad = [mark("a", [0.0; 3], f64::NAN)];
    assert!(matches!(
        score(&nodules, &[], &bad, &uids(&["a"]), None),
        Err(ScoreError::InvalidProbability { index: 0, .. })
    ));
    assert_eq!(
        score(
            &nodules,
            &[],
            &[],
            &uids(&["a"]),
            Some(Bootstrap { n: 0, seed: 0 })
        ),
        Err(ScoreError::NoResamples)
    );
}

// ---- input files -----------------------------------------------------------

/// Writes `content` to a fresh file in the system's temp dir.
fn temp_file(content: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "luna16-test-{}-{}.csv",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn submission_columns_by_name_in_any_order() {
    let p = temp_file("probability,extra,coordZ,seriesuid,coordX,coordY\n0.5,x,3,a,1,2\n 0.25 , y , 6 , b , 4 , 5 \n");
    let marks = read_marks(&p).unwrap();
    assert_eq!(
        marks,
        [
            mark("a", [1.0, 2.0, 3.0], 0.5),
            mark("b", [4.0, 5.0, 6.0], 0.25)
        ]
    );
}

#[test]
fn input_errors_name_file_and_line() {
    let p = temp_file("seriesuid,coordX,coordY,probability\na,1,2,0.5\n");
    let e = read_marks(&p).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::Table(TableError {
                line: Some(1),
                reason: Reason::MissingColumn {
                    column: "coordZ",
                    ..
                },
                ..
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains(&p.display().to_string()));

    let p = temp_file("seriesuid,coordX,coordY,coordZ,probability\na,1,2,3,0.5\na,1,2,3,high\n");
    let e = read_marks(&p).unwrap_err();
    assert!(
        matches!(e, InputError::Table(TableError { line: Some(3), reason: Reason::InvalidNumber { column: "probability", ref value }, .. }) if value == "high"),
        "{e}"
    );
    assert!(e.to_string().contains("line 3"), "{e}");

    let p = temp_file("seriesuid,coordX,coordY,coordZ,probability\na,1,2,3,NaN\n");
    let e = read_marks(&p).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::Table(TableError {
                line: Some(2),
                reason: Reason::InvalidNumber { .. },
                ..
            })
        ),
        "{e}"
    );

    let p = temp_file("seriesuid,coordX,coordY,coordZ,probability\na,1,2,x,0.1\n");
    let e = read_marks(&p).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::Table(TableError {
                reason: Reason::InvalidNumber {
                    column: "coordZ",
                    ..
                },
                ..
            })
        ),
        "{e}"
    );
}

#[test]
fn empty_short_and_missing_inputs_are_errors() {
    let p = temp_file("");
    let empty = |e| {
        matches!(
            e,
            Err(InputError::Table(TableError {
                reason: Reason::Empty,
                ..
            }))
        )
    };
    assert!(empty(read_marks(&p).map(drop)));
    assert!(empty(read_findings(&p).map(drop)));

    let p = temp_file("seriesuid,coordX,coordY,coordZ,diameter_mm\n");
    assert!(matches!(
        read_annotations(&p),
        Err(InputError::NoNodules { .. })
    ));
    assert_eq!(
        read_findings(&p).unwrap(),
        [],
        "an empty excluded list is fine"
    );

    let p = temp_file("seriesuid,coordX,coordY,coordZ,probability\n");
    let e = read_marks(&p).unwrap_err();
    assert!(matches!(e, InputError::NoMarks { .. }), "{e}");

    let p = temp_file("seriesuid,coordX,coordY,coordZ,probability\na,1,2,3\n");
    let e = read_marks(&p).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::Table(TableError {
                line: Some(2),
                reason: Reason::MissingField {
                    column: "probability",
                    ..
                },
                ..
            })
        ),
        "{e}"
    );

    let missing = Path::new("/nonexistent/luna16/submission.csv");
    assert!(matches!(
        read_marks(missing),
        Err(InputError::Table(TableError {
            reason: Reason::Io(_),
            ..
        }))
    ));

    let p = temp_file("\n");
    assert!(matches!(
        read_seriesuids(&p),
        Err(InputError::NoScans { .. })
    ));
}

/// The reader `prepcache` shares: blank lines count in line numbers, an
/// empty seriesuid is refused, and -1 ("size unknown") diameters are kept.
#[test]
fn findings_keep_minus_one_diameters_and_count_blank_lines() {
    let p = temp_file("seriesuid,coordX,coordY,coordZ,diameter_mm\n\na,1,2,3,-1\n\n,1,2,3,4\n");
    let e = read_findings(&p).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::Table(TableError {
                line: Some(5),
                reason: Reason::EmptySeriesUid,
                ..
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("line 5"), "{e}");
    let p = temp_file("seriesuid,coordX,coordY,coordZ,diameter_mm\n\na,1,2,3,-1\n");
    assert_eq!(read_findings(&p).unwrap()[0].diameter_mm, -1.0);
}

#[test]
fn a_submission_that_is_a_fifo_is_refused_without_blocking() {
    let fifo = temp_file("");
    std::fs::remove_file(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || tx.send(read_marks(&path).map(|m| m.len())));
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("reading a FIFO blocked");
    std::fs::remove_file(&fifo).unwrap();
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            InputError::Table(TableError {
                reason: Reason::NotRegularFile(_),
                ..
            })
        ),
        "{e}"
    );
}

#[test]
fn seriesuids_are_first_fields_without_header() {
    let p = temp_file("seriesuid\n1.2.3\n1.2.4,extra\n\n1.2.3\n");
    assert_eq!(read_seriesuids(&p).unwrap(), ["1.2.3", "1.2.4", "1.2.3"]);
    let p = temp_file("1.2.3\n1.2.4\n");
    assert_eq!(read_seriesuids(&p).unwrap(), ["1.2.3", "1.2.4"]);
}
