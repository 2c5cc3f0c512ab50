//! `train doctor`: what libtorch this binary runs on and which devices it
//! sees. Exits non-zero when the driver shows a GPU that libtorch cannot use.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The libtorch the binary was built against; the one loaded may differ
/// (`LD_LIBRARY_PATH`, a moved venv).
pub const LIBTORCH_VERSION: &str = env!("LIBTORCH_VERSION");

pub struct Report {
    /// The version built against ([`LIBTORCH_VERSION`]).
    pub libtorch: &'static str,
    /// The loaded libtorch's folder and version, where they can be found.
    pub loaded: Option<(PathBuf, String)>,
    pub cuda_available: bool,
    pub cudnn_available: bool,
    pub device_count: usize,
    /// One per libtorch device, in libtorch's numbering; empty when unknown.
    pub device_names: Vec<String>,
    /// GPUs the driver lists (`nvidia-smi`) that `CUDA_VISIBLE_DEVICES`
    /// leaves visible.
    pub visible_gpus: usize,
    pub threads: i32,
    /// The CPU's model name as the kernel reports it, where it does.
    pub cpu_model: Option<String>,
    /// Which of [`CPU_FEATURES`] the CPU has, as libtorch's cpuinfo sees
    /// them: what decides the kernels oneDNN and ATen pick, and so the
    /// speed and the bf16 rounding a machine gets.
    pub cpu_features: Vec<&'static str>,
    /// The CPU computes bf16 natively (AVX512-BF16 or AMX), so
    /// `--precision auto` runs bf16 on it.
    pub cpu_native_bf16: bool,
    /// libtorch has oneDNN's fused convolution + activation, which bf16
    /// inference on the CPU takes (`model::fused`).
    pub fused_conv: bool,
}

pub fn report() -> Report {
    let device_count = tch::Cuda::device_count().max(0) as usize;
    let gpus = nvidia_smi_gpus();
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    Report {
        libtorch: LIBTORCH_VERSION,
        loaded: loaded_libtorch(),
        cuda_available: tch::Cuda::is_available(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        device_count,
        device_names: visible_names(&gpus, visible.as_deref(), device_count),
        visible_gpus: pick(&gpus, visible.as_deref()).len(),
        threads: tch::get_num_threads(),
        cpu_model: cpu_model(),
        cpu_features: CPU_FEATURES
            .into_iter()
            .filter(|f| torch_ext::cpu_feature(f) == Some(true))
            .collect(),
        cpu_native_bf16: torch_ext::cpu_has_native_bf16(),
        fused_conv: torch_ext::conv_pointwise_available(),
    }
}

/// The instruction sets that split CPUs into kinds for this toolkit: no
/// AVX-512 (oneDNN's bf16 convolution refuses), AVX-512 without bf16
/// (emulated, slower than fp32), native bf16, AMX.
pub const CPU_FEATURES: [&str; 5] = [
    "avx2",
    "avx512_f",
    "avx512_bf16",
    "amx_bf16",
    "avx_ne_convert",
];

/// The first `model name` of /proc/cpuinfo.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// `train doctor`: prints the report; fails when CUDA was expected (the
/// driver lists a GPU that CUDA_VISIBLE_DEVICES leaves visible) but
/// libtorch sees none.
pub fn run() -> ExitCode {
    let r = report();
    print(&r);
    if r.visible_gpus > 0 && !r.cuda_available {
        eprintln!(
            "doctor: the driver shows {} GPU(s) but libtorch sees none (a CPU-only libtorch, or libtorch_cuda not loaded)",
            r.visible_gpus
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The folder of the `libtorch_cpu.so` this process mapped, and the version
/// recorded next to it.
fn loaded_libtorch() -> Option<(PathBuf, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| Path::new(p).parent())?
        .to_path_buf();
    let version = libtorch_version(&lib).unwrap_or_else(|| "unknown".to_owned());
    Some((lib, version))
}

/// The version a wheel (`torch/version.py`) or a libtorch zip
/// (`build-version`) records beside its lib folder.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        let v = line.split('=').nth(1)?.trim().trim_matches(['\'', '"']);
        return Some(v.to_owned());
    }
    let text = std::fs::read_to_string(root.join("build-version")).ok()?;
    Some(text.trim().to_owned())
}

/// A GPU as `nvidia-smi` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct SmiGpu {
    pub index: String,
    pub uuid: String,
    pub name: String,
}

/// tch has no binding for device properties; nvidia-smi ships with every driver.
fn nvidia_smi_gpus() -> Vec<SmiGpu> {
    Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,uuid,name,memory.total",
            "--format=csv,noheader",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| parse_smi(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

fn parse_smi(text: &str) -> Vec<SmiGpu> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ',').map(str::trim);
            Some(SmiGpu {
                index: f.next()?.to_owned(),
                uuid: f.next()?.to_owned(),
                name: f.next()?.to_owned(),
            })
        })
        .collect()
}

/// The driver's GPUs in libtorch's numbering: `CUDA_VISIBLE_DEVICES` picks
/// them by index or UUID (prefix) and renumbers from 0. Empty when the
/// two disagree on the count, rather than a name paired by guesswork.
pub fn visible_names(gpus: &[SmiGpu], visible: Option<&str>, count: usize) -> Vec<String> {
    let picked = pick(gpus, visible);
    if picked.len() != count {
        return Vec::new();
    }
    picked.iter().map(|g| g.name.clone()).collect()
}

/// The GPUs CUDA enumerates, in its order: the list stops at the first
/// entry that names no GPU, as the CUDA runtime's parsing does.
fn pick<'a>(gpus: &'a [SmiGpu], visible: Option<&str>) -> Vec<&'a SmiGpu> {
    match visible {
        None => gpus.iter().collect(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .map_while(|id| {
                gpus.iter()
                    .find(|g| g.index == id || (id.len() > 4 && g.uuid.starts_with(id)))
            })
            .collect(),
    }
}

pub fn print(r: &Report) {
    println!("train {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch (built): {}", r.libtorch);
    match &r.loaded {
        Some((dir, version)) => {
            println!("libtorch (loaded): {version}");
            println!("libtorch dir:     {}", dir.display());
        }
        None => println!("libtorch (loaded): unknown"),
    }
    println!(
        "CPU:              {} ({})",
        r.cpu_model.as_deref().unwrap_or("model unknown"),
        match r.cpu_features.is_empty() {
            true => format!("none of {}", CPU_FEATURES.join(", ")),
            false => r.cpu_features.join(", "),
        }
    );
    println!("CPU threads:      {}", r.threads);
    println!(
        "CPU bf16:         {}",
        match r.cpu_native_bf16 {
            true => "native (--precision auto runs bf16)",
            false => "emulated (--precision auto runs fp32)",
        }
    );
    println!(
        "fused inference:  {}",
        match (r.fused_conv, r.cpu_native_bf16) {
            (true, true) => "yes (bf16 conv + activation as one oneDNN op on the CPU)",
            (true, false) => "available under --precision bf16 (slow without native bf16)",
            (false, _) => "no (this libtorch lacks mkldnn::_convolution_pointwise)",
        }
    );
    if r.cuda_available {
        println!(
            "CUDA available:   yes ({} device{})",
            r.device_count,
            if r.device_count == 1 { "" } else { "s" }
        );
        for i in 0..r.device_count {
            let name = r.device_names.get(i).map_or(
                "(name unknown: nvidia-smi missing or disagreeing)",
                String::as_str,
            );
            println!("  cuda:{i}           {name}");
        }
        println!(
            "cuDNN available:  {}",
            if r.cudnn_available { "yes" } else { "no" }
        );
    } else {
        println!("CUDA available:   no (training runs on the CPU)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus() -> Vec<SmiGpu> {
        parse_smi(
            "0, GPU-aaaa1111, NVIDIA A100, 40960 MiB\n1, GPU-bbbb2222, NVIDIA H100, 81559 MiB\n",
        )
    }

    #[test]
    fn names_follow_cuda_visible_devices() {
        let g = gpus();
        assert_eq!(g[1].name, "NVIDIA H100, 81559 MiB");
        assert_eq!(visible_names(&g, None, 2).len(), 2);
        assert_eq!(visible_names(&g, Some("1"), 1), vec![g[1].name.clone()]);
        assert_eq!(
            visible_names(&g, Some("GPU-bbbb"), 1),
            vec![g[1].name.clone()]
        );
        assert_eq!(
            visible_names(&g, Some("1,0"), 2),
            vec![g[1].name.clone(), g[0].name.clone()]
        );
        // Disagreement: no names rather than wrong ones.
        assert!(visible_names(&g, Some("1"), 2).is_empty());
        assert!(visible_names(&g, Some("7"), 1).is_empty());
        assert!(pick(&g, Some("-1")).is_empty());
        assert!(pick(&g, Some("")).is_empty());
    }

    #[test]
    fn the_loaded_libtorch_is_found_with_its_version() {
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        let (dir, version) = loaded_libtorch().expect("libtorch_cpu.so mapped");
        assert!(dir.join("libtorch_cpu.so").exists(), "{}", dir.display());
        assert_ne!(version, "unknown");
    }
}
