//! `train doctor`: what libtorch this binary runs on and which devices it sees.

use std::process::Command;

pub const LIBTORCH_VERSION: &str = env!("LIBTORCH_VERSION");

pub struct Report {
    pub libtorch: &'static str,
    pub cuda_available: bool,
    pub cudnn_available: bool,
    pub device_count: usize,
    pub device_names: Vec<String>,
    pub threads: i32,
}

pub fn report() -> Report {
    let device_count = tch::Cuda::device_count().max(0) as usize;
    Report {
        libtorch: LIBTORCH_VERSION,
        cuda_available: tch::Cuda::is_available(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        device_count,
        device_names: if device_count > 0 {
            gpu_names()
        } else {
            Vec::new()
        },
        threads: tch::get_num_threads(),
    }
}

/// tch has no binding for device properties; nvidia-smi ships with every driver.
fn gpu_names() -> Vec<String> {
    Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn print(r: &Report) {
    println!("train {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch:        {}", r.libtorch);
    println!(
        "libtorch dir:    {}",
        option_env!("LIBTORCH_LIB_DIR").unwrap_or("unknown")
    );
    println!("CPU threads:     {}", r.threads);
    if r.cuda_available {
        println!(
            "CUDA available:  yes ({} device{})",
            r.device_count,
            if r.device_count == 1 { "" } else { "s" }
        );
        for i in 0..r.device_count {
            let name = r
                .device_names
                .get(i)
                .map(String::as_str)
                .unwrap_or("(name unknown: nvidia-smi not found)");
            println!("  cuda:{i}          {name}");
        }
        println!(
            "cuDNN available: {}",
            if r.cudnn_available { "yes" } else { "no" }
        );
    } else {
        println!("CUDA available:  no (training runs on the CPU)");
    }
}
