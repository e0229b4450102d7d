//! [`CudaDevice`]: the [`Device`] of a real GPU, through cudarc's driver API with the library
//! loaded at run time. One context and three streams (compute, upload, download, see
//! [`Stream`]); buffers come from the arena ([`Pool`]) and are used on the compute stream only,
//! apart from the copies of [`Device::copy_to_device`] / [`Device::copy_to_host`], which the
//! callers order with events. cudarc's own event tracking is off: the streams are ordered here.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr,
    LaunchConfig, PinnedHostSlice, PushKernelArg, result, sys,
};
use cudarc::nvrtc::Ptx;

use super::config::Geometry;
use super::device::{Arg, Device};
use super::kernels;
use super::nvtx::Nvtx;
use super::runtime::{Pool, PoolStats, Pooled, Retained, Stream};
use crate::error::{Error, Result};

fn error(op: impl Into<String>, message: impl ToString) -> Error {
    Error::Backend {
        backend: "cuda",
        op: op.into(),
        message: message.to_string(),
    }
}

/// Whether the CUDA driver library (`libcuda.so`) can be loaded. Never panics.
pub fn driver_present() -> bool {
    // SAFETY: only tries dlopen on the candidate names; loads nothing it keeps.
    unsafe { sys::is_culib_present() }
}

/// Why this binary has no kernels, if it has none.
pub fn kernels_missing() -> Option<String> {
    kernels::MISSING.map(|reason| {
        format!(
            "this binary has no CUDA kernels ({reason}); rebuild it where NVRTC is available \
             (build.rs)"
        )
    })
}

/// The number of CUDA devices, or why there are none.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(no_driver());
    }
    let count = CudaContext::device_count().map_err(|e| error("device count", e))?;
    Ok(count.max(0) as usize)
}

fn no_driver() -> Error {
    error(
        "init",
        "no CUDA driver found (libcuda.so: install the NVIDIA driver or add its folder to \
         LD_LIBRARY_PATH)",
    )
}

/// A GPU, its context and streams, its memory arena, and every kernel of this binary loaded on
/// it.
pub struct CudaDevice {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    compute: Arc<CudaStream>,
    upload: Arc<CudaStream>,
    download: Arc<CudaStream>,
    pool: Pool<CudaSlice<f32>>,
    capturing: Cell<bool>,
    functions: HashMap<String, CudaFunction>,
    /// Boxed, so that the device stays small to move by value.
    nvtx: Option<Box<Nvtx>>,
}

/// Pinned host memory and the event of the last copy queued from or into it.
pub struct CudaHost {
    slice: PinnedHostSlice<f32>,
    pending: Option<CudaEvent>,
}

impl Drop for CudaHost {
    fn drop(&mut self) {
        // The copy engine may still read or write these pages.
        if let Some(event) = self.pending.take() {
            let _ = event.synchronize();
        }
    }
}

/// A captured graph and the arena buffers it writes.
pub struct CudaGraphExec {
    graph: Option<CudaGraph>,
    stream: Arc<CudaStream>,
    _retained: Retained<CudaSlice<f32>>,
}

// SAFETY: a graph is launched only through the backend that captured it, on its stream, by
// whichever one thread holds that backend; it moves between threads only with the backend, as
// the device's other handles do, and is never used from two threads at once.
unsafe impl Send for CudaGraphExec {}

impl Drop for CudaGraphExec {
    fn drop(&mut self) {
        // A replay may still be running; its buffers go back to the arena after this.
        let _ = self.stream.synchronize();
    }
}

fn no_capture(op: &str) -> Error {
    error(op, "not allowed while a graph is being captured")
}

impl CudaDevice {
    /// Opens GPU `ordinal` and loads the kernels. Errors (never panics) when the driver, the
    /// device or the kernels are missing.
    pub fn new(ordinal: usize) -> Result<Self> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(error(
                "init",
                format!("no CUDA device cuda:{ordinal} ({count} found)"),
            ));
        }
        if let Some(reason) = kernels_missing() {
            return Err(error("init", reason));
        }
        let name = format!("cuda:{ordinal}");
        let ctx = CudaContext::new(ordinal).map_err(|e| error(&name, e))?;
        // SAFETY: arena buffers are used on the compute stream only; the copies on the other two
        // streams are ordered by the events their callers record and wait for (Device docs).
        unsafe { ctx.disable_event_tracking() };
        // Streams of their own, not the legacy default stream, which cannot be captured and
        // would serialise the copies with the compute work.
        let stream = || ctx.new_stream().map_err(|e| error(&name, e));
        let (compute, upload, download) = (stream()?, stream()?, stream()?);
        let mut functions = HashMap::new();
        for (stem, ptx) in kernels::PTX {
            let module = ctx
                .load_module(Ptx::from_src(*ptx))
                .map_err(|e| error(format!("loading kernels/{stem}.cu"), e))?;
            for entry in kernels::entries(ptx) {
                let f = module
                    .load_function(entry)
                    .map_err(|e| error(format!("kernel {entry}"), e))?;
                functions.insert(entry.to_string(), f);
            }
        }
        Ok(CudaDevice {
            ordinal,
            ctx,
            compute,
            upload,
            download,
            pool: Pool::default(),
            capturing: Cell::new(false),
            functions,
            nvtx: Nvtx::load().map(Box::new),
        })
    }

    /// The card's name, as the driver reports it (`NVIDIA H100 80GB HBM3`).
    pub fn card(&self) -> String {
        self.ctx
            .name()
            .unwrap_or_else(|_| "unknown CUDA device".into())
    }

    /// Where NVTX was loaded from, if it was.
    pub fn nvtx_origin(&self) -> Option<&str> {
        self.nvtx.as_ref().map(|n| n.origin.as_str())
    }

    /// Waits for all queued work on every stream.
    pub fn synchronize(&self) -> Result<()> {
        for s in [&self.compute, &self.upload, &self.download] {
            s.synchronize().map_err(|e| error("synchronize", e))?;
        }
        Ok(())
    }

    fn stream(&self, s: Stream) -> &Arc<CudaStream> {
        match s {
            Stream::Compute => &self.compute,
            Stream::Upload => &self.upload,
            Stream::Download => &self.download,
        }
    }

    fn refuse_in_capture(&self, op: &str) -> Result<()> {
        if self.capturing.get() {
            Err(no_capture(op))
        } else {
            Ok(())
        }
    }

    fn words_of(mem: &CudaSlice<f32>, words: usize, op: &str) -> Result<()> {
        if words <= mem.len() {
            Ok(())
        } else {
            Err(error(
                op,
                format!("{words} words asked of a buffer of {}", mem.len()),
            ))
        }
    }

    /// Makes `stream` wait for the copy pending on `host`, then records the new one: a host
    /// buffer's pending event always covers every copy queued with it.
    fn queue_host_copy(
        &self,
        stream: Stream,
        host: &mut CudaHost,
        copy: impl FnOnce(&CudaStream, &mut PinnedHostSlice<f32>) -> Result<()>,
    ) -> Result<()> {
        self.refuse_in_capture("host copy")?;
        let s = self.stream(stream);
        if let Some(previous) = host.pending.take() {
            s.wait(&previous).map_err(|e| error("host copy", e))?;
        }
        copy(s, &mut host.slice)?;
        host.pending = Some(self.record(stream)?);
        Ok(())
    }
}

impl Device for CudaDevice {
    type Mem = Pooled<CudaSlice<f32>>;
    type Event = CudaEvent;
    type Host = CudaHost;
    type Graph = CudaGraphExec;

    fn tensor_cores(&self) -> bool {
        self.ctx
            .compute_capability()
            .is_ok_and(|(major, _)| major >= 8)
    }

    fn name(&self) -> String {
        format!("cuda:{}", self.ordinal)
    }

    fn alloc(&self, words: usize) -> Result<Self::Mem> {
        let (mem, _reused) = self.pool.take(words.max(1), |n| {
            // SAFETY: every kernel writes the whole of each buffer it allocates before any read.
            unsafe { self.compute.alloc::<f32>(n) }
                .map_err(|e| error("alloc", format!("{n} floats: {e}")))
        })?;
        Ok(mem)
    }

    fn upload(&self, host: &[f32]) -> Result<Self::Mem> {
        self.refuse_in_capture("upload")?;
        let mem = self.alloc(host.len())?;
        if !host.is_empty() {
            // SAFETY: mem holds at least host.len() floats; a copy from pageable memory is
            // staged before the call returns, so `host` may change afterwards.
            unsafe { result::memcpy_htod_async(self.ptr(&mem), host, self.compute.cu_stream()) }
                .map_err(|e| error("upload", format!("{} floats: {e}", host.len())))?;
        }
        Ok(mem)
    }

    fn download(&self, mem: &Self::Mem, words: usize) -> Result<Vec<f32>> {
        self.refuse_in_capture("download")?;
        Self::words_of(mem, words, "download")?;
        let mut host = vec![0.0f32; words];
        if words > 0 {
            // SAFETY: mem holds at least `words` floats (checked); the copy to pageable memory is
            // complete when the call returns, and the stream sync below makes sure of it.
            unsafe {
                result::memcpy_dtoh_async(&mut host, self.ptr(mem), self.compute.cu_stream())
            }
            .map_err(|e| error("download", e))?;
            self.compute
                .synchronize()
                .map_err(|e| error("download", e))?;
        }
        Ok(host)
    }

    fn ptr(&self, mem: &Self::Mem) -> u64 {
        // Event tracking is off, so the guard records nothing.
        let (ptr, _guard) = (**mem).device_ptr(&self.compute);
        ptr
    }

    fn copy(&self, dst: &Self::Mem, src: &Self::Mem, words: usize) -> Result<()> {
        Self::words_of(dst, words, "copy")?;
        Self::words_of(src, words, "copy")?;
        if words == 0 {
            return Ok(());
        }
        // SAFETY: both buffers hold at least `words` floats (checked) and live on this device.
        unsafe {
            result::memcpy_dtod_async(
                self.ptr(dst),
                self.ptr(src),
                words * 4,
                self.compute.cu_stream(),
            )
        }
        .map_err(|e| error("copy", e))
    }

    unsafe fn launch(&self, kernel: &'static str, geometry: Geometry, args: &[Arg]) -> Result<()> {
        let f = self
            .functions
            .get(kernel)
            .ok_or_else(|| error(kernel, "kernel not found in this binary's PTX"))?;
        let mut builder = self.compute.launch_builder(f);
        for arg in args {
            match arg {
                Arg::Ptr(p) => builder.arg(p),
                Arg::I32(v) => builder.arg(v),
                Arg::I64(v) => builder.arg(v),
                Arg::F32(v) => builder.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: geometry.grid,
            block_dim: geometry.block,
            shared_mem_bytes: geometry.shared_bytes,
        };
        // SAFETY: the caller guarantees that `args` match the kernel and that the buffers cover
        // its accesses; `args` outlives the launch call, which copies the values.
        unsafe { builder.launch(cfg) }.map_err(|e| error(kernel, e))?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    fn alloc_host(&self, words: usize) -> Result<CudaHost> {
        self.refuse_in_capture("alloc_host")?;
        // Not write-combined: the host reads downloads back from these pages.
        // SAFETY: the contents are unspecified, as the trait says.
        let slice = unsafe { self.ctx.alloc_pinned_with_flags::<f32>(words.max(1), 0) }
            .map_err(|e| error("alloc_host", format!("{words} floats: {e}")))?;
        Ok(CudaHost {
            slice,
            pending: None,
        })
    }

    fn host_len(&self, host: &CudaHost) -> usize {
        host.slice.len()
    }

    fn host_mut<'h>(&self, host: &'h mut CudaHost) -> Result<&'h mut [f32]> {
        if let Some(event) = host.pending.take() {
            event.synchronize().map_err(|e| error("host copy", e))?;
        }
        host.slice.as_mut_slice().map_err(|e| error("host copy", e))
    }

    fn copy_to_device(&self, dst: &Self::Mem, src: &mut CudaHost, words: usize) -> Result<()> {
        Self::words_of(dst, words, "copy_to_device")?;
        let dptr = self.ptr(dst);
        self.queue_host_copy(Stream::Upload, src, |s, pinned| {
            let host = pinned.as_slice().map_err(|e| error("copy_to_device", e))?;
            let host = host.get(..words).ok_or_else(|| {
                error("copy_to_device", format!("{words} words of {}", host.len()))
            })?;
            // SAFETY: dst holds at least `words` floats (checked); the pinned pages stay
            // allocated until the copy's event is reached (CudaHost's drop waits for it).
            unsafe { result::memcpy_htod_async(dptr, host, s.cu_stream()) }
                .map_err(|e| error("copy_to_device", e))
        })
    }

    fn copy_to_host(&self, dst: &mut CudaHost, src: &Self::Mem, words: usize) -> Result<()> {
        Self::words_of(src, words, "copy_to_host")?;
        let sptr = self.ptr(src);
        self.queue_host_copy(Stream::Download, dst, |s, pinned| {
            let host = pinned
                .as_mut_slice()
                .map_err(|e| error("copy_to_host", e))?;
            let len = host.len();
            let host = host
                .get_mut(..words)
                .ok_or_else(|| error("copy_to_host", format!("{words} words of {len}")))?;
            // SAFETY: src holds at least `words` floats (checked); the pinned pages are not
            // read on the host before the copy's event is reached (host_mut waits for it).
            unsafe { result::memcpy_dtoh_async(host, sptr, s.cu_stream()) }
                .map_err(|e| error("copy_to_host", e))
        })
    }

    fn record(&self, stream: Stream) -> Result<CudaEvent> {
        self.refuse_in_capture("record")?;
        self.stream(stream)
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .map_err(|e| error("record", e))
    }

    fn wait(&self, stream: Stream, event: &CudaEvent) -> Result<()> {
        self.refuse_in_capture("wait")?;
        self.stream(stream)
            .wait(event)
            .map_err(|e| error("wait", e))
    }

    fn synchronize_event(&self, event: &CudaEvent) -> Result<()> {
        event.synchronize().map_err(|e| error("synchronize", e))
    }

    fn begin_capture(&self) -> Result<()> {
        self.refuse_in_capture("begin_capture")?;
        self.compute
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| error("begin_capture", e))?;
        self.pool.begin_capture();
        self.capturing.set(true);
        Ok(())
    }

    fn end_capture(&self) -> Result<CudaGraphExec> {
        if !self.capturing.replace(false) {
            return Err(error("end_capture", "no graph is being captured"));
        }
        let retained = self.pool.end_capture();
        let graph = self
            .compute
            .end_capture(sys::CUgraphInstantiate_flags(0))
            .map_err(|e| error("end_capture", e))?;
        Ok(CudaGraphExec {
            graph,
            stream: self.compute.clone(),
            _retained: retained,
        })
    }

    fn replay(&self, graph: &CudaGraphExec) -> Result<()> {
        self.refuse_in_capture("replay")?;
        match &graph.graph {
            Some(g) => g.launch().map_err(|e| error("replay", e)),
            None => Ok(()),
        }
    }

    fn set_shared_limit(&self, kernel: &'static str, bytes: u32) -> Result<()> {
        let f = self
            .functions
            .get(kernel)
            .ok_or_else(|| error(kernel, "kernel not found in this binary's PTX"))?;
        let bytes = i32::try_from(bytes).map_err(|_| error(kernel, "shared memory too large"))?;
        f.set_attribute(
            sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            bytes,
        )
        .map_err(|e| error(kernel, e))
    }

    fn range_push(&self, name: &str) {
        if let Some(nvtx) = &self.nvtx {
            nvtx.push(name);
        }
    }

    fn range_pop(&self) {
        if let Some(nvtx) = &self.nvtx {
            nvtx.pop();
        }
    }

    fn event(&self) -> Result<CudaEvent> {
        self.refuse_in_capture("event")?;
        let event = self
            .ctx
            .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| error("event", e))?;
        event.record(&self.compute).map_err(|e| error("event", e))?;
        Ok(event)
    }

    fn elapsed_ms(&self, start: &CudaEvent, end: &CudaEvent) -> Result<f64> {
        start
            .elapsed_ms(end)
            .map(f64::from)
            .map_err(|e| error("event timing", e))
    }
}
