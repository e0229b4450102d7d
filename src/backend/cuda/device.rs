//! What the launchers need from a device: memory of 4-byte words, kernel launches by name,
//! ranges and timing events. [`super::CudaDevice`] implements it with cudarc; the tests implement
//! it with the same kernel sources compiled for the CPU (`tests/emu/`), so that the launchers,
//! the weight preparation and the kernels' indexing are checked on machines without a GPU.

use super::config::Geometry;
use crate::error::Result;

/// One kernel argument, as the kernel declares it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// A device pointer (`float*`, `unsigned*`); 0 is a null pointer.
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// A device that runs the kernels of `kernels/*.cu`.
pub trait Device {
    /// An allocation of 4-byte words (f32 or u32).
    type Mem;
    /// A point in the device's stream of work, for timing.
    type Event;

    /// A short name for messages: `cuda:0`.
    fn name(&self) -> String;
    /// An allocation of `words` words, contents unspecified.
    fn alloc(&self, words: usize) -> Result<Self::Mem>;
    /// A copy of `host` on the device.
    fn upload(&self, host: &[f32]) -> Result<Self::Mem>;
    /// The first `words` words of `mem`, copied back (the device finishes its queued work first).
    fn download(&self, mem: &Self::Mem, words: usize) -> Result<Vec<f32>>;
    /// The device address of `mem`, for [`Arg::Ptr`].
    fn ptr(&self, mem: &Self::Mem) -> u64;

    /// Queues kernel `kernel` with `args`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number, order and type, and every pointer must
    /// cover what the kernel reads and writes for the sizes it is given and this geometry.
    unsafe fn launch(&self, kernel: &'static str, geometry: Geometry, args: &[Arg]) -> Result<()>;

    /// Lets `kernel` launch with up to `bytes` of dynamic shared memory, past the 48 KB a block
    /// gets without asking (`CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`). Devices without
    /// such a limit accept it as it is.
    fn set_shared_limit(&self, kernel: &'static str, bytes: u32) -> Result<()> {
        let _ = (kernel, bytes);
        Ok(())
    }

    /// Opens a named range (NVTX on CUDA); ranges nest.
    fn range_push(&self, name: &str);
    /// Closes the innermost open range.
    fn range_pop(&self);
    /// Records an event at the current end of the device's queue.
    fn event(&self) -> Result<Self::Event>;
    /// Milliseconds between two recorded events (waits for the second).
    fn elapsed_ms(&self, start: &Self::Event, end: &Self::Event) -> Result<f64>;
}
