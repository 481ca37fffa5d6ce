//! Device and dtype selection shared by every command.
//!
//! `auto` picks CUDA when the build has it and a GPU answers, else Metal, else the CPU. Asking for
//! a backend that was not compiled in is an error that names the cargo feature to enable.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::{Error, Result};

/// What the user asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA if built in and present, else Metal, else CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The CUDA GPU with this ordinal.
    Cuda(usize),
    /// The default Metal GPU.
    Metal,
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "metal" | "mps" => Ok(Self::Metal),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Self::Cuda).map_err(|_| {
                    Error::InvalidSpec(format!(
                        "invalid CUDA ordinal in device '{s}' (expected cuda:N)"
                    ))
                }),
                None => Err(Error::InvalidSpec(format!(
                    "unknown device '{s}' (expected auto, cpu, cuda, cuda:N or metal)"
                ))),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => write!(f, "metal"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device.
    pub fn select(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => open_cuda(ordinal),
            Self::Metal => open_metal(),
            Self::Auto => Ok(open_cuda(0)
                .or_else(|_| open_metal())
                .unwrap_or(Device::Cpu)),
        }
    }
}

/// Whether this build includes the CUDA backend.
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// Whether this build includes the Metal backend.
pub const fn metal_compiled() -> bool {
    cfg!(feature = "metal")
}

fn open_cuda(ordinal: usize) -> Result<Device> {
    if !cuda_compiled() {
        return Err(Error::NotCompiled {
            device: format!("cuda:{ordinal}"),
            feature: "cuda",
        });
    }
    Device::new_cuda(ordinal).map_err(|e| Error::DeviceUnavailable {
        device: format!("cuda:{ordinal}"),
        message: first_line(&e.to_string()),
    })
}

fn open_metal() -> Result<Device> {
    if !metal_compiled() {
        return Err(Error::NotCompiled {
            device: "metal".into(),
            feature: "metal",
        });
    }
    Device::new_metal(0).map_err(|e| Error::DeviceUnavailable {
        device: "metal".into(),
        message: first_line(&e.to_string()),
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// A short name for a device: `cpu`, `cuda:0`, `metal`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// What the user asked for with `--dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DTypeSpec(DType);

impl DTypeSpec {
    /// The Candle dtype.
    pub fn dtype(self) -> DType {
        self.0
    }

    /// The default compute dtype for a device: f32 on CPU (Candle's CPU f16 kernels are slower),
    /// f16 on GPUs.
    pub fn default_for(device: &Device) -> Self {
        if device.is_cpu() {
            Self(DType::F32)
        } else {
            Self(DType::F16)
        }
    }
}

impl FromStr for DTypeSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self(DType::F32)),
            "f16" | "float16" | "half" => Ok(Self(DType::F16)),
            "bf16" | "bfloat16" => Ok(Self(DType::BF16)),
            other => Err(Error::InvalidSpec(format!(
                "unknown dtype '{other}' (expected f32, f16 or bf16)"
            ))),
        }
    }
}

impl fmt::Display for DTypeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("CPU".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("metal".parse::<DeviceSpec>().unwrap(), DeviceSpec::Metal);
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn auto_always_finds_a_device() {
        let device = DeviceSpec::Auto.select().unwrap();
        if !cuda_compiled() && !metal_compiled() {
            assert!(device.is_cpu());
        }
    }

    #[test]
    fn missing_backend_names_the_feature() {
        if !cuda_compiled() {
            let err = DeviceSpec::Cuda(0).select().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        if !metal_compiled() {
            let err = DeviceSpec::Metal.select().unwrap_err().to_string();
            assert!(err.contains("--features metal"), "{err}");
        }
    }

    #[test]
    fn parses_dtypes() {
        assert_eq!("f32".parse::<DTypeSpec>().unwrap().dtype(), DType::F32);
        assert_eq!("F16".parse::<DTypeSpec>().unwrap().dtype(), DType::F16);
        assert_eq!("bf16".parse::<DTypeSpec>().unwrap().dtype(), DType::BF16);
        assert!("f64x".parse::<DTypeSpec>().is_err());
        assert_eq!(DTypeSpec::default_for(&Device::Cpu).dtype(), DType::F32);
    }
}
