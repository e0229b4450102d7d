//! The CUDA backend: the ops of [`crate::backend::Backend`] as hand-written kernels
//! (`kernels/*.cu`, compiled to PTX by build.rs with NVRTC and embedded in the binary), run
//! through cudarc's driver API with the driver library loaded at run time.
//!
//! - [`config`]: tile sizes and launch geometry, the one source of truth for kernels and
//!   launchers;
//! - [`kernels`]: the embedded PTX;
//! - [`device`]: the [`Device`] trait, what the launchers need from a GPU;
//! - [`driver`]: [`CudaDevice`], that trait on a real GPU;
//! - [`gpu`]: [`GpuBackend`], the launchers, generic over the device so that the tests can run
//!   them on the CPU with the same kernel sources (`tests/emu/`);
//! - [`nvtx`]: NVTX ranges for profilers.
//!
//! Without a GPU, [`CudaBackend::new`] returns an error that names what is missing (the driver,
//! the device, or the kernels of this binary); nothing panics.

pub mod config;
pub mod device;
pub mod driver;
pub mod gpu;
pub mod kernels;
pub mod nvtx;

pub use device::{Arg, Device};
pub use driver::{CudaDevice, device_count, driver_present, kernels_missing};
pub use gpu::{GpuBackend, GpuBuf, GpuConv, GpuDense, GpuIndex, LayerTime};

use crate::error::{Error, Result};

/// The CUDA backend on a real GPU.
pub type CudaBackend = GpuBackend<CudaDevice>;

impl GpuBackend<CudaDevice> {
    /// The backend on GPU `ordinal` (`cuda:N`). Errors — never panics — when there is no driver,
    /// no such device, or no kernels in this binary.
    pub fn new(ordinal: usize) -> Result<Self> {
        Ok(GpuBackend::from_device(CudaDevice::new(ordinal)?))
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.device().synchronize()
    }
}

/// Which backend a `--device` option asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
}

impl DeviceChoice {
    /// Parses `cpu`, `cuda`, `cuda:N`, `gpu`, or `auto` (a GPU when one can be used, else the CPU).
    pub fn parse(text: &str) -> Result<DeviceChoice> {
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            "auto" => Ok(Self::auto()),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| {
                    Error::Request(format!(
                        "unknown device `{text}` (expected cpu, cuda, cuda:N or auto)"
                    ))
                }),
        }
    }

    /// `cuda:0` when the driver, a device and this binary's kernels are all there; else the CPU.
    pub fn auto() -> DeviceChoice {
        let usable = kernels_missing().is_none() && device_count().is_ok_and(|n| n > 0);
        if usable {
            DeviceChoice::Cuda(0)
        } else {
            DeviceChoice::Cpu
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_parse() {
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::parse("CUDA").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(
            DeviceChoice::parse("cuda:3").unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert!(DeviceChoice::parse("cuda:x").is_err());
        assert!(DeviceChoice::parse("tpu").is_err());
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
    }
}
