//! `--device`: where tensors live.

use anyhow::{bail, Result};
use tch::Device;

/// What a device name asks for, before asking libtorch what exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceName {
    /// CUDA when libtorch sees a GPU, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

/// `auto`, `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse_device_name(s: &str) -> Result<DeviceName, &'static str> {
    match s {
        "auto" => Ok(DeviceName::Auto),
        "cpu" => Ok(DeviceName::Cpu),
        "cuda" => Ok(DeviceName::Cuda(0)),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Ok(DeviceName::Cuda(i)),
            _ => Err("expected auto, cpu, cuda or cuda:N"),
        },
    }
}

/// The device `s` names, checked against the GPUs libtorch sees. A CUDA
/// device is made current for this thread, so contexts, events and streams
/// libtorch creates lazily land on it and not on GPU 0.
pub fn parse_device(s: &str) -> Result<Device> {
    let device = match parse_device_name(s) {
        Ok(DeviceName::Auto) => Device::cuda_if_available(),
        Ok(DeviceName::Cpu) => Device::Cpu,
        Ok(DeviceName::Cuda(i)) => Device::Cuda(i),
        Err(why) => bail!("--device {s:?}: {why}"),
    };
    if let Device::Cuda(i) = device {
        let count = tch::Cuda::device_count().max(0) as usize;
        if i >= count {
            bail!("--device {s}: libtorch sees {count} CUDA device(s) (run `train doctor`)");
        }
        torch_ext::set_cuda_device(i).map_err(|e| anyhow::anyhow!("--device {s}: {e}"))?;
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("gpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        if tch::Cuda::device_count() == 0 {
            assert!(parse_device("cuda:0")
                .unwrap_err()
                .to_string()
                .contains("0 CUDA device"));
            assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
        } else {
            let last = tch::Cuda::device_count() as usize - 1;
            assert_eq!(
                parse_device(&format!("cuda:{last}")).unwrap(),
                Device::Cuda(last)
            );
            assert_eq!(torch_ext::cuda_current_device().unwrap(), last);
        }
    }
}
