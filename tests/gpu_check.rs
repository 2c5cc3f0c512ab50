//! scripts/gpu_check.sh, run with `--device cpu`: every check it makes on a
//! GPU machine, here on the CPU (fp16 is CUDA-only and left out there).

use std::process::Command;

use luna_e2e::python::{python, scripts_dir};

#[test]
fn gpu_check_runs_every_check_on_the_cpu_and_writes_one_results_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = luna_e2e::prepcache::synthetic_cache(tmp.path(), 6, 3);
    // The segmentation cache of the chapter 13 checks, as tests/segmentation.rs makes it.
    let seg_root = tmp.path().join("seg-root");
    let seg_data = luna_e2e::prepcache::synth(&seg_root, 6, 7);
    let seg_cache = seg_root.join("seg");
    luna_e2e::prepcache::ok(&[
        "seg",
        "--data",
        luna_e2e::prepcache::s(&seg_data),
        "--out",
        luna_e2e::prepcache::s(&seg_cache),
        "--val-stride",
        "3",
    ]);
    let bin = luna_e2e::train::bin();
    let out_file = tmp.path().join("results.md");
    let output = Command::new("bash")
        .arg(scripts_dir().join("gpu_check.sh"))
        .args(["--device", "cpu", "--quick", "--cache"])
        .arg(&cache)
        .arg("--seg-cache")
        .arg(&seg_cache)
        .arg("--bin")
        .arg(bin.parent().unwrap())
        .arg("--python")
        .arg(python())
        .arg("--out")
        .arg(&out_file)
        .output()
        .unwrap();
    let results = std::fs::read_to_string(&out_file).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{results}");
    for section in [
        "### doctor",
        "### bench-loader",
        "### bench-step fp32 contiguous",
        "### bench-step bf16 channels-last",
        "### pytorch step",
        "### train",
        "### eval",
        "### seg bench-step fp32 contiguous",
        "### seg bench-step bf16 channels-last",
        "### pytorch seg step",
        "### train seg",
        "### synth scan",
        "### analyze 1",
        "### analyze 2",
        "## Summary",
    ] {
        assert!(results.contains(section), "no {section:?} in\n{results}");
    }
    assert!(!results.contains("fp16"), "fp16 is CUDA-only:\n{results}");
    assert_eq!(results.matches("-> fell.").count(), 2, "{results}");
    // The U-Net summary: both sides, training and full-slice inference.
    assert!(
        results.contains("| tch | bf16 channels-last |")
            && results.contains("| pytorch | cl-bf16 |"),
        "{results}"
    );
    assert!(
        results.contains("U-Net train: best tch") && results.contains("U-Net inference: best tch"),
        "{results}"
    );
    // The summary has figures from both sides and the ratio line.
    assert!(
        results.contains("| tch | bf16 channels-last | 8 |"),
        "{results}"
    );
    assert!(results.contains("| pytorch | cl-bf16 | 8 |"), "{results}");
    assert!(results.contains("PyTorch's step time is"), "{results}");
    // Chapter 14: the whole-scan times, per stage, and the candidate count.
    assert_eq!(results.matches(" s in all read ").count(), 2, "{results}");
    assert!(results.contains(" candidates."), "{results}");
    assert!(results.ends_with("All checks passed.\n"), "{results}");

    // A wrong argument is one clear line, not a half-written file.
    let bad = Command::new("bash")
        .arg(scripts_dir().join("gpu_check.sh"))
        .args(["--device", "tpu"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--device must be cuda or cpu"));
}
