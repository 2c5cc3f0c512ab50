//! `--precision` and `--memory-format`: how the model's arithmetic runs.
//!
//! Master weights, gradients, optimizer state and checkpoints are fp32 in
//! every mode; bf16/fp16 only change what autocast runs convolutions and
//! linear layers in. Channels-last 3-D stores activations as
//! (N, D, H, W, C), which oneDNN's CPU convolutions run several times faster
//! than the default layout.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

/// The arithmetic of the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    /// bfloat16 autocast: fp32's range, so no loss scaling is needed.
    Bf16,
    /// float16 autocast (CUDA): needs a dynamic loss scaler.
    Fp16,
    /// bf16 where the hardware has it natively, else fp32.
    Auto,
}

/// The activations' memory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    Contiguous,
    ChannelsLast,
    /// Channels-last on the CPU (measured faster there), contiguous on CUDA.
    Auto,
}

/// The `[compute]` section of a run configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    pub precision: Precision,
    pub memory_format: MemoryFormat,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            precision: Precision::Auto,
            memory_format: MemoryFormat::Auto,
        }
    }
}

impl ComputeConfig {
    /// What runs before these settings existed used: a configuration
    /// without a `[compute]` section means this.
    pub fn fp32_contiguous() -> Self {
        ComputeConfig {
            precision: Precision::Fp32,
            memory_format: MemoryFormat::Contiguous,
        }
    }

    /// The concrete modes for `device`: `auto` decided, impossible
    /// combinations refused with the flag named.
    pub fn resolve(self, device: Device) -> Result<ComputeConfig, String> {
        let native_bf16 = match device {
            Device::Cuda(i) => torch_ext::cuda_supports_bf16(i),
            _ => torch_ext::cpu_has_native_bf16(),
        };
        let precision = match self.precision {
            Precision::Auto if native_bf16 => Precision::Bf16,
            Precision::Auto => Precision::Fp32,
            Precision::Fp16 if !device.is_cuda() => {
                return Err("--precision fp16 runs on CUDA only (libtorch has no fp16 CPU \
                            autocast worth using); use bf16 or fp32 on the CPU"
                    .to_owned())
            }
            Precision::Bf16 if device.is_cuda() && !native_bf16 => {
                return Err(format!(
                    "--precision bf16: {device:?} has no bf16 support (compute capability < 8); use fp32"
                ))
            }
            p => p,
        };
        let memory_format = match self.memory_format {
            MemoryFormat::Auto if device.is_cuda() => MemoryFormat::Contiguous,
            MemoryFormat::Auto => MemoryFormat::ChannelsLast,
            m => m,
        };
        Ok(ComputeConfig {
            precision,
            memory_format,
        })
    }

    /// The autocast dtype, `None` for fp32.
    pub fn autocast_kind(self) -> Option<Kind> {
        match self.precision {
            Precision::Bf16 => Some(Kind::BFloat16),
            Precision::Fp16 => Some(Kind::Half),
            Precision::Fp32 | Precision::Auto => None,
        }
    }

    /// fp16's narrow range needs a dynamic loss scaler (optim::loss_scale).
    pub fn needs_loss_scaling(self) -> bool {
        self.precision == Precision::Fp16
    }

    pub fn channels_last(self) -> bool {
        self.memory_format == MemoryFormat::ChannelsLast
    }

    /// `precision bf16, memory channels-last`, for the run's opening lines.
    pub fn describe(self) -> String {
        let p = match self.precision {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16 autocast",
            Precision::Fp16 => "fp16 autocast",
            Precision::Auto => "auto",
        };
        let m = match self.memory_format {
            MemoryFormat::Contiguous => "contiguous",
            MemoryFormat::ChannelsLast => "channels-last",
            MemoryFormat::Auto => "auto",
        };
        format!("precision {p}, memory {m}")
    }
}

/// The parsers the command line uses for these two flags.
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    match s {
        "fp32" => Ok(Precision::Fp32),
        "bf16" => Ok(Precision::Bf16),
        "fp16" => Ok(Precision::Fp16),
        "auto" => Ok(Precision::Auto),
        other => Err(format!("{other:?}: expected fp32, bf16, fp16 or auto")),
    }
}

pub fn parse_memory_format(s: &str) -> Result<MemoryFormat, String> {
    match s {
        "contiguous" => Ok(MemoryFormat::Contiguous),
        "channels-last" => Ok(MemoryFormat::ChannelsLast),
        "auto" => Ok(MemoryFormat::Auto),
        other => Err(format!(
            "{other:?}: expected channels-last, contiguous or auto"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_cpu_and_fp16_is_refused_on_it() {
        let auto = ComputeConfig::default().resolve(Device::Cpu).unwrap();
        let expected = if torch_ext::cpu_has_native_bf16() {
            Precision::Bf16
        } else {
            Precision::Fp32
        };
        assert_eq!(auto.precision, expected);
        assert_eq!(auto.memory_format, MemoryFormat::ChannelsLast);
        let fp16 = ComputeConfig {
            precision: Precision::Fp16,
            ..ComputeConfig::default()
        };
        let err = fp16.resolve(Device::Cpu).unwrap_err();
        assert!(err.contains("--precision fp16"), "{err}");
        // On CUDA fp16 is accepted (with the loss scaler), whether or not a
        // GPU is present: resolving only decides the modes.
        let on_cuda = fp16.resolve(Device::Cuda(0)).unwrap();
        assert_eq!(on_cuda.precision, Precision::Fp16);
        assert!(on_cuda.needs_loss_scaling());
        assert!(!auto.needs_loss_scaling());
        assert_eq!(parse_precision("bf16"), Ok(Precision::Bf16));
        assert!(parse_memory_format("nhwc")
            .unwrap_err()
            .contains("channels-last"));
    }
}
