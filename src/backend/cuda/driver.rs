//! [`CudaDevice`]: the [`Device`] of a real GPU, through cudarc's driver API with the library
//! loaded at run time. One context, one stream: every op is queued in order, so buffers need no
//! cross-stream tracking, and a download waits for everything queued before it.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg, sys,
};
use cudarc::nvrtc::Ptx;

use super::config::Geometry;
use super::device::{Arg, Device};
use super::kernels;
use super::nvtx::Nvtx;
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
            "this binary was built without CUDA kernels: {reason}. Rebuild it where NVRTC is \
             available (see build.rs), or set SGLRP_REQUIRE_KERNELS=1 to make that a build error"
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
        "no CUDA driver found: libcuda.so could not be loaded (is the NVIDIA driver installed \
         and its library on the dynamic loader's path, e.g. LD_LIBRARY_PATH?)",
    )
}

/// A GPU, its context and stream, and every kernel of this binary loaded on it.
pub struct CudaDevice {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: HashMap<String, CudaFunction>,
    nvtx: Option<Nvtx>,
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
        let ctx = CudaContext::new(ordinal).map_err(|e| error(format!("cuda:{ordinal}"), e))?;
        // SAFETY: everything runs on the one stream below, so no buffer is used by two streams.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
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
            stream,
            functions,
            nvtx: Nvtx::load(),
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

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| error("synchronize", e))
    }
}

impl Device for CudaDevice {
    type Mem = CudaSlice<f32>;
    type Event = CudaEvent;

    fn name(&self) -> String {
        format!("cuda:{}", self.ordinal)
    }

    fn alloc(&self, words: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: every kernel writes the whole of each buffer it allocates before any read.
        unsafe { self.stream.alloc::<f32>(words.max(1)) }
            .map_err(|e| error("alloc", format!("{words} floats: {e}")))
    }

    fn upload(&self, host: &[f32]) -> Result<CudaSlice<f32>> {
        if host.is_empty() {
            return self.alloc(1);
        }
        self.stream
            .clone_htod(host)
            .map_err(|e| error("upload", format!("{} floats: {e}", host.len())))
    }

    fn download(&self, mem: &CudaSlice<f32>, words: usize) -> Result<Vec<f32>> {
        if words == 0 {
            return Ok(Vec::new());
        }
        let view = mem.slice(..words);
        let host = self
            .stream
            .clone_dtoh(&view)
            .map_err(|e| error("download", e))?;
        self.synchronize()?;
        Ok(host)
    }

    fn ptr(&self, mem: &CudaSlice<f32>) -> u64 {
        // Event tracking is off, so the guard records nothing.
        let (ptr, _guard) = mem.device_ptr(&self.stream);
        ptr
    }

    unsafe fn launch(&self, kernel: &'static str, geometry: Geometry, args: &[Arg]) -> Result<()> {
        let f = self
            .functions
            .get(kernel)
            .ok_or_else(|| error(kernel, "kernel not found in this binary's PTX"))?;
        let mut builder = self.stream.launch_builder(f);
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
        let event = self
            .ctx
            .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| error("event", e))?;
        event.record(&self.stream).map_err(|e| error("event", e))?;
        Ok(event)
    }

    fn elapsed_ms(&self, start: &CudaEvent, end: &CudaEvent) -> Result<f64> {
        start
            .elapsed_ms(end)
            .map(f64::from)
            .map_err(|e| error("event timing", e))
    }
}
