//! What the launchers need from a device: memory of 4-byte words from an arena, kernel launches
//! by name, streams ordered by events, pinned host memory, graph capture and replay, ranges and
//! timing events. [`super::CudaDevice`] implements it with cudarc; the tests implement it with the
//! same kernel sources compiled for the CPU (`tests/emu/`), so that the launchers, the weight
//! preparation, the kernels' indexing and the ordering of the streams are checked on machines
//! without a GPU.

use super::config::Geometry;
use super::runtime::{PoolStats, Stream};
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
///
/// Every op without a [`Stream`] argument is queued on [`Stream::Compute`]. Buffers come from the
/// device's arena ([`super::runtime::Pool`]) and go back to it when dropped; a buffer must stay
/// alive until the copies of other streams that read or write it are synchronized.
pub trait Device {
    /// An allocation of 4-byte words (f32 or u32).
    type Mem;
    /// A point in one stream's work.
    type Event;
    /// Page-locked host memory, the end of the copies on the upload and download streams.
    type Host;
    /// A captured sequence of compute-stream work, replayed as one launch.
    type Graph;

    /// A short name for messages: `cuda:0`.
    fn name(&self) -> String;
    /// An allocation of at least `words` words from the arena, contents unspecified.
    fn alloc(&self, words: usize) -> Result<Self::Mem>;
    /// A copy of `host` on the device; `host` may change as soon as this returns.
    fn upload(&self, host: &[f32]) -> Result<Self::Mem>;
    /// The first `words` words of `mem`, copied back once the compute stream's queued work is
    /// done.
    fn download(&self, mem: &Self::Mem, words: usize) -> Result<Vec<f32>>;
    /// The device address of `mem`, for [`Arg::Ptr`].
    fn ptr(&self, mem: &Self::Mem) -> u64;
    /// Copies the first `words` words of `src` to `dst`.
    fn copy(&self, dst: &Self::Mem, src: &Self::Mem, words: usize) -> Result<()>;

    /// Queues kernel `kernel` with `args`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number, order and type, and every pointer must
    /// cover what the kernel reads and writes for the sizes it is given and this geometry.
    unsafe fn launch(&self, kernel: &'static str, geometry: Geometry, args: &[Arg]) -> Result<()>;

    /// What the arena has done so far.
    fn pool_stats(&self) -> PoolStats;

    /// Pinned host memory of at least `words` words, contents unspecified.
    fn alloc_host(&self, words: usize) -> Result<Self::Host>;
    /// The words of `host` a copy may use.
    fn host_len(&self, host: &Self::Host) -> usize;
    /// `host` on the host, once the copies queued from or into it are done.
    fn host_mut<'h>(&self, host: &'h mut Self::Host) -> Result<&'h mut [f32]>;
    /// Queues on [`Stream::Upload`] the copy of the first `words` words of `src` into `dst`.
    fn copy_to_device(&self, dst: &Self::Mem, src: &mut Self::Host, words: usize) -> Result<()>;
    /// Queues on [`Stream::Download`] the copy of the first `words` words of `src` into `dst`.
    fn copy_to_host(&self, dst: &mut Self::Host, src: &Self::Mem, words: usize) -> Result<()>;
    /// An event at the current end of `stream`'s queue.
    fn record(&self, stream: Stream) -> Result<Self::Event>;
    /// Makes `stream`'s later work wait until `event` is reached.
    fn wait(&self, stream: Stream, event: &Self::Event) -> Result<()>;
    /// Waits on the host until `event` is reached.
    fn synchronize_event(&self, event: &Self::Event) -> Result<()>;

    /// From now on the compute stream's work is recorded, not run, until [`Self::end_capture`].
    /// Nothing may allocate from the driver, copy from or to the host, or record events meanwhile.
    fn begin_capture(&self) -> Result<()>;
    /// The work queued since [`Self::begin_capture`], as a graph that holds the buffers freed
    /// during the capture (its kernels write them on every replay).
    fn end_capture(&self) -> Result<Self::Graph>;
    /// Queues the captured work again, with the same arguments.
    fn replay(&self, graph: &Self::Graph) -> Result<()>;

    /// Whether the device has the tensor cores of the `*_mma` kernels (sm_80 or later). Devices
    /// without them run the SIMT kernels.
    fn tensor_cores(&self) -> bool {
        false
    }

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
    /// Records a timing event on the compute stream.
    fn event(&self) -> Result<Self::Event>;
    /// Milliseconds between two timing events (waits for the second).
    fn elapsed_ms(&self, start: &Self::Event, end: &Self::Event) -> Result<f64>;
}
