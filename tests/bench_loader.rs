//! `train bench-loader` measures every worker count and reports rates that
//! agree with the amount of data it was asked to move.

#[test]
fn bench_loader_reports_each_worker_count_against_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(dir.path(), 3, 11);
    let out = luna_e2e::train::train(&[
        "bench-loader".as_ref(),
        "--cache".as_ref(),
        cache.as_os_str(),
        "--num-workers".as_ref(),
        "2".as_ref(),
        "--batch-size".as_ref(),
        "8".as_ref(),
        "--balanced".as_ref(),
        "--samples".as_ref(),
        "300".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--json".as_ref(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["samples"], 300);
    assert_eq!(report["chunk_bytes"], 32 * 48 * 48 * 2);
    let single = report["single_thread_samples_per_s"].as_f64().unwrap();
    assert!(single > 0.0);
    let rows = report["by_workers"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row["workers"], k + 1);
        let rate = row["samples_per_s"].as_f64().unwrap();
        let mb = row["mb_per_s"].as_f64().unwrap();
        assert!(rate > 0.0);
        assert!((mb - rate * (32 * 48 * 48 * 2) as f64 / 1e6).abs() < 1e-6 * mb.max(1.0));
        let frac = row["fraction_of_bound"].as_f64().unwrap();
        assert!((frac - rate / (single * (k + 1) as f64)).abs() < 1e-9);
        assert!(row["peak_rss_mb"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bench_step_times_each_batch_size_on_the_requested_threads() {
    let out = luna_e2e::train::train(&[
        "bench-step".as_ref(),
        "--batch-sizes".as_ref(),
        "2,3".as_ref(),
        "--steps".as_ref(),
        "1".as_ref(),
        "--warmup".as_ref(),
        "1".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2);
    for (row, batch) in rows.iter().zip([2, 3]) {
        assert_eq!(row["batch_size"], batch);
        assert_eq!(row["threads"], 1);
        let seconds = row["seconds"].as_f64().unwrap();
        let rate = row["samples_per_s"].as_f64().unwrap();
        assert!(seconds > 0.0);
        assert!((rate * seconds - batch as f64).abs() < 1e-6);
    }
}
