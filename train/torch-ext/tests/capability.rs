//! Hardware queries against what the OS reports.

use torch_ext::{cpu_feature, cpu_has_native_bf16, cuda_supports_bf16};

#[cfg(target_os = "linux")]
#[test]
fn native_bf16_matches_proc_cpuinfo() {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let expected = flags.contains(&"avx512_bf16") || flags.contains(&"amx_bf16");
    assert_eq!(cpu_has_native_bf16(), expected, "flags: {flags:?}");
}

#[test]
fn cpu_feature_names() {
    assert_eq!(cpu_feature("no_such_feature"), None);
    // Not a boolean entry of the map.
    assert_eq!(cpu_feature("num_logical_cores"), None);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(cpu_feature("sse2"), Some(true));
    assert!(cpu_feature("avx512_bf16").is_some() || !cfg!(target_arch = "x86_64"));
}

#[test]
fn cuda_bf16_false_without_that_gpu() {
    if !tch::Cuda::is_available() {
        assert!(!cuda_supports_bf16(0));
    }
    assert!(!cuda_supports_bf16(1 << 20));
}
