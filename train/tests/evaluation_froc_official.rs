//! `train::evaluate::froc` against a line-by-line Python port of the
//! official LUNA16 scoring (noduleCADEvaluationLUNA16.py: the matching loop,
//! `computeFROC` over scikit-learn's `roc_curve`, `np.interp` at the seven
//! rates) on random candidate lists with tied scores, double hits and misses.

use train::evaluate::{froc, Nodule, Prediction};

const OFFICIAL: &str = r#"
import json, sys
import numpy as np

def roc_curve(y, s):
    # scikit-learn's roc_curve (drop_intermediate only removes collinear points,
    # which np.interp does not notice).
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    idx = np.r_[np.where(np.diff(s))[0], len(y) - 1]
    tps = np.cumsum(y)[idx]
    fps = 1 + idx - tps
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    return fps / fps[-1], tps / tps[-1]

def cpm_points(data):
    gt, prob, exclude = [], [], []
    for uid in data["scans"]:
        cands = {i: c for i, c in enumerate(data["candidates"]) if c["uid"] == uid}
        cands2 = dict(cands)
        for n in [n for n in data["nodules"] if n["uid"] == uid]:
            d = n["d"] if n["d"] >= 0 else 10.0
            r2 = (d / 2.0) ** 2
            matches = []
            for key, c in cands.items():
                dist = sum((a - b) ** 2 for a, b in zip(n["xyz"], c["xyz"]))
                if dist < r2:
                    matches.append(c)
                    cands2.pop(key, None)
            if matches:
                gt.append(1.0); prob.append(max(c["p"] for c in matches)); exclude.append(False)
            else:
                gt.append(1.0); prob.append(-1e9); exclude.append(True)
        for c in cands2.values():
            gt.append(0.0); prob.append(c["p"]); exclude.append(False)

    gt_l = np.array([g for g, e in zip(gt, exclude) if not e])
    prob_l = np.array([p for p, e in zip(prob, exclude) if not e])
    detected, lesions = gt_l.sum(), sum(gt)
    fpr, tpr = roc_curve(gt_l, prob_l)
    if sum(gt) == len(gt):
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (len(prob_l) - detected) / len(data["scans"])
    sens = tpr * detected / lesions
    return list(np.interp([0.125, 0.25, 0.5, 1, 2, 4, 8], fps, sens))

print(json.dumps([cpm_points(case) for case in json.loads(sys.stdin.read())]))
"#;

/// SplitMix64: reproducible cases without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn case(seed: u64) -> (Vec<Prediction>, Vec<Nodule>, usize) {
    let mut rng = Rng(seed);
    let scans = 2 + (rng.next() % 5) as usize;
    let mut nodules = Vec::new();
    for k in 0..(3 + rng.next() % 10) {
        nodules.push(Nodule {
            series_uid: format!("s{}", rng.next() % scans as u64),
            center_xyz: [k as f64 * 40.0, 0.0, 0.0],
            diameter_mm: 3.0 + rng.unit() * 20.0,
        });
    }
    let mut predictions = Vec::new();
    for _ in 0..(20 + rng.next() % 200) {
        let near = &nodules[(rng.next() % nodules.len() as u64) as usize];
        // Half the candidates near some nodule (hits, near misses, double hits), half anywhere.
        let (uid, xyz) = if rng.unit() < 0.5 {
            let jitter = |r: &mut Rng| (r.unit() - 0.5) * near.diameter_mm;
            (
                near.series_uid.clone(),
                [
                    near.center_xyz[0] + jitter(&mut rng),
                    jitter(&mut rng),
                    jitter(&mut rng),
                ],
            )
        } else {
            (
                format!("s{}", rng.next() % scans as u64),
                [rng.unit() * 500.0, rng.unit() * 50.0, 0.0],
            )
        };
        predictions.push(Prediction {
            // Two decimals: plenty of tied scores.
            prob_nodule: (rng.unit() * 100.0).round() as f32 / 100.0,
            is_nodule: false,
            series_uid: uid,
            center_xyz: xyz,
            diameter_mm: 0.0,
        });
    }
    (predictions, nodules, scans)
}

#[test]
fn sensitivities_match_the_official_scoring_on_random_cases() {
    let mut cases = Vec::new();
    let mut input = Vec::new();
    for seed in 0..40 {
        let (predictions, nodules, scans) = case(seed);
        input.push(serde_json::json!({
            "scans": (0..scans).map(|s| format!("s{s}")).collect::<Vec<_>>(),
            "nodules": nodules.iter().map(|n| serde_json::json!(
                {"uid": n.series_uid, "xyz": n.center_xyz, "d": n.diameter_mm})).collect::<Vec<_>>(),
            "candidates": predictions.iter().map(|p| serde_json::json!(
                {"uid": p.series_uid, "xyz": p.center_xyz, "p": f64::from(p.prob_nodule)}))
                .collect::<Vec<_>>(),
        }));
        cases.push((predictions, nodules, scans));
    }
    let official: Vec<Vec<f64>> = run_official(&serde_json::Value::from(input));
    for ((predictions, nodules, scans), official) in cases.iter().zip(&official) {
        let ours = froc(predictions, nodules, *scans);
        let ours: Vec<f64> = ours
            .operating_points
            .iter()
            .map(|o| o.sensitivity)
            .collect();
        for (a, b) in ours.iter().zip(official) {
            assert!((a - b).abs() < 1e-9, "ours {ours:?}\nofficial {official:?}");
        }
    }
}

fn run_official(input: &serde_json::Value) -> Vec<Vec<f64>> {
    use std::io::Write;
    let mut child = std::process::Command::new(crate::common::python())
        .arg("-c")
        .arg(OFFICIAL)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("failed to start the cross-check Python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
