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
//! - [`registry`]: which kernel runs an op, by (op, variant, precision);
//! - `fused`: the launchers of the fused z⁺ pass (the dual forwards and the multiplications);
//! - [`mma`]: the tensor-core launchers; `mma_ops`: the ops the registry gives them;
//! - `heads`, `reduce`: the launchers of the heads and of the heatmaps;
//! - [`runtime`]: the memory arena, the streams, CUDA graphs per pass shape and the pipeline
//!   that overlaps the copies of neighbouring batches with the work of one;
//! - [`nvtx`]: NVTX ranges for profilers.
//!
//! Without a GPU, [`CudaBackend::new`] returns an error that names what is missing (the driver,
//! the device, or the kernels of this binary); nothing panics.

pub mod config;
pub mod device;
pub mod driver;
mod fused;
pub mod gpu;
mod heads;
pub mod kernels;
pub mod mma;
mod mma_ops;
pub mod nvtx;
mod reduce;
pub mod registry;
pub mod runtime;

pub use device::{Arg, Device};
pub use driver::{
    CudaDevice, CudaGraphExec, CudaHost, device_count, driver_present, kernels_missing,
};
pub use gpu::{GpuBackend, GpuBuf, GpuConv, GpuDense, GpuIndex, LayerTime};
pub use runtime::{Graphs, Pipeline, PoolStats, Stream, Ticket};

use crate::error::Result;

/// The CUDA backend on a real GPU.
pub type CudaBackend = GpuBackend<CudaDevice>;

impl GpuBackend<CudaDevice> {
    /// The backend on GPU `ordinal` (`cuda:N`). Errors — never panics — when there is no driver,
    /// no such device, or no kernels in this binary.
    pub fn new(ordinal: usize) -> Result<Self> {
        Ok(GpuBackend::from_device(CudaDevice::new(ordinal)?))
    }

    /// Waits for all queued work on every stream.
    pub fn synchronize(&self) -> Result<()> {
        self.device().synchronize()
    }
}

/// How many CUDA devices this binary can use, or every reason it can use none: a missing driver
/// or device and missing kernels are reported together, so one message says all there is to
/// fix. `--device auto` takes cuda:0 exactly when this is `Ok`.
pub fn usable_devices() -> std::result::Result<usize, String> {
    let mut why = Vec::new();
    let count = match device_count() {
        Ok(0) => {
            why.push("the CUDA driver reports no device".to_string());
            0
        }
        Ok(n) => n,
        Err(e) => {
            why.push(e.to_string());
            0
        }
    };
    why.extend(kernels_missing());
    if why.is_empty() {
        Ok(count)
    } else {
        Err(why.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_devices_say_every_reason_in_one_line() {
        match usable_devices() {
            Ok(n) => assert!(n > 0 && kernels_missing().is_none()),
            Err(why) => {
                assert!(!why.is_empty() && !why.contains('\n'), "{why}");
                let named = match device_count() {
                    Err(e) => why.contains(&e.to_string()),
                    Ok(0) => why.contains("no device"),
                    Ok(_) => false,
                };
                assert!(
                    named || kernels_missing().is_some_and(|k| why.contains(&k)),
                    "{why}"
                );
            }
        }
    }
}
