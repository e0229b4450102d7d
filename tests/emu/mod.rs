//! `EmuDevice`: sglrp's `Device` trait on the CPU, running the real `kernels/*.cu` sources
//! compiled by the host C++ compiler through `cuda_emu.hpp`. With it the CUDA launchers, the
//! device-side weight preparation and the kernels' indexing, tiling and barriers are checked
//! against the CPU backend on machines without a GPU.
//!
//! Buffers are filled with NaN when allocated and again when the arena hands them out anew, so
//! an output element a kernel forgets to write fails the comparison.
//!
//! The streams are modelled as queues that run only when something needs their results: a
//! download, a host wait on an event, or another stream's wait on an event they record. So work
//! runs as late as the events allow, and a missing wait shows: a pass that does not wait for its
//! upload reads the NaN of a fresh buffer, a download that does not wait for the pass copies
//! NaN. [`Schedule::UploadsEarly`] runs uploads as soon as their waits allow instead, which
//! shows an upload that overwrites an input still to be read. Graph capture records the compute
//! stream's work instead of queueing it, and a replay queues the recording again.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sglrp::backend::cuda::config::{self, Geometry};
use sglrp::backend::cuda::runtime::{Pool, PoolStats, Pooled, Retained, Stream};
use sglrp::backend::cuda::{Arg, Device, GpuBackend};
use sglrp::error::{Error, Result};

type LaunchFn =
    unsafe extern "C" fn(*const c_char, *const u32, *const u32, u32, *mut *mut c_void) -> c_int;

/// The kernels compiled for the CPU, once per test binary.
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sglrp_emu_kernels.so");
        let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let mut cmd = Command::new(&compiler);
        cmd.args(["-std=c++20", "-O2", "-shared", "-fPIC", "-pthread"])
            .arg("-Wno-unknown-pragmas")
            .arg(format!("-I{}", root.join("kernels").display()))
            .arg(root.join("tests/emu/kernels.cpp"))
            .arg("-o")
            .arg(&out);
        for (name, value) in config::DEFINES {
            cmd.arg(format!("-D{name}={value}"));
        }
        let result = cmd.output().unwrap_or_else(|e| {
            panic!("the CPU emulation of the kernels needs a C++20 compiler ({compiler}): {e}")
        });
        assert!(
            result.status.success(),
            "compiling tests/emu/kernels.cpp failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        out
    })
}

/// Host memory standing in for device (or pinned host) memory. Freed only when the arena or the
/// last queued copy that uses it lets go, so queued work never reads freed memory.
pub struct EmuMem {
    ptr: *mut f32,
    len: usize,
}

impl Drop for EmuMem {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a boxed slice leaked in `EmuMem::new`.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

impl EmuMem {
    fn new(values: Box<[f32]>) -> Self {
        let len = values.len();
        EmuMem {
            ptr: Box::into_raw(values) as *mut f32,
            len,
        }
    }

    fn nan(words: usize) -> Self {
        EmuMem::new(vec![f32::NAN; words.max(1)].into_boxed_slice())
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// Pinned host memory: shared with the queued copies that use it.
pub struct EmuHost {
    mem: Rc<EmuMem>,
    pending: Option<EmuEvent>,
}

/// An event: an index into the device's table.
pub struct EmuEvent(usize);

struct EventState {
    stream: Stream,
    at: Option<Instant>,
}

/// When the emulated upload stream runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Every stream runs when its results are needed.
    Late,
    /// Uploads run as soon as they are queued (after the events they wait for).
    UploadsEarly,
}

#[derive(Clone)]
enum Op {
    Kernel {
        name: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        /// Dynamic shared memory, bytes.
        shared: u32,
        slots: Vec<u64>,
    },
    Write {
        dst: u64,
        data: Arc<[f32]>,
    },
    Copy {
        dst: u64,
        src: u64,
        words: usize,
        /// Keeps pinned host memory alive until the copy has run.
        host: Option<Rc<EmuMem>>,
    },
    Poison {
        dst: u64,
        words: usize,
    },
    Record(usize),
    Wait(usize),
}

/// A captured graph: the recorded work and the buffers it writes.
pub struct EmuGraph {
    ops: Vec<Op>,
    _retained: Retained<EmuMem>,
}

fn index(s: Stream) -> usize {
    match s {
        Stream::Compute => 0,
        Stream::Upload => 1,
        Stream::Download => 2,
    }
}

fn emu_error(op: &str, message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "emu",
        op: op.into(),
        message: message.into(),
    }
}

pub struct EmuDevice {
    launch: LaunchFn,
    _lib: libloading::Library,
    /// Every range opened, in order, with the nesting depth when opened.
    pub ranges: RefCell<Vec<(usize, String)>>,
    depth: RefCell<usize>,
    /// Every kernel launched (queued or captured), in order; replays launch nothing new.
    pub launches: RefCell<Vec<&'static str>>,
    pool: Pool<EmuMem>,
    queues: RefCell<[VecDeque<Op>; 3]>,
    events: RefCell<Vec<EventState>>,
    capture: RefCell<Option<Vec<Op>>>,
    schedule: Cell<Schedule>,
}

impl EmuDevice {
    pub fn new() -> Self {
        // SAFETY: the library is ours, built above; `emu_launch` has the declared signature.
        unsafe {
            let lib = libloading::Library::new(library()).expect("load the emulated kernels");
            let launch = *lib
                .get::<LaunchFn>(b"emu_launch\0")
                .expect("emu_launch symbol");
            EmuDevice {
                launch,
                _lib: lib,
                ranges: RefCell::new(Vec::new()),
                depth: RefCell::new(0),
                launches: RefCell::new(Vec::new()),
                pool: Pool::default(),
                queues: RefCell::new(Default::default()),
                events: RefCell::new(Vec::new()),
                capture: RefCell::new(None),
                schedule: Cell::new(Schedule::Late),
            }
        }
    }

    pub fn set_schedule(&self, schedule: Schedule) {
        self.schedule.set(schedule);
    }

    /// Runs everything queued on every stream.
    pub fn run_all(&self) {
        for s in [Stream::Compute, Stream::Upload, Stream::Download] {
            while self.step(s) {}
        }
    }

    fn capturing(&self) -> bool {
        self.capture.borrow().is_some()
    }

    fn refuse_in_capture(&self, op: &str) -> Result<()> {
        if self.capturing() {
            Err(emu_error(op, "not allowed while a graph is being captured"))
        } else {
            Ok(())
        }
    }

    fn enqueue(&self, stream: Stream, op: Op) {
        if stream == Stream::Compute
            && let Some(graph) = self.capture.borrow_mut().as_mut()
        {
            graph.push(op);
            return;
        }
        self.queues.borrow_mut()[index(stream)].push_back(op);
        if stream == Stream::Upload && self.schedule.get() == Schedule::UploadsEarly {
            while self.step(Stream::Upload) {}
        }
    }

    fn new_event(&self, stream: Stream) -> EmuEvent {
        let mut events = self.events.borrow_mut();
        events.push(EventState { stream, at: None });
        let id = events.len() - 1;
        drop(events);
        self.enqueue(stream, Op::Record(id));
        EmuEvent(id)
    }

    /// Runs the stream that records `event` until it has.
    fn run_to(&self, event: usize) {
        let stream = self.events.borrow()[event].stream;
        while self.events.borrow()[event].at.is_none() {
            assert!(self.step(stream), "event {event} is never recorded");
        }
    }

    /// Runs the first op queued on `stream`; false when there is none.
    fn step(&self, stream: Stream) -> bool {
        let Some(op) = self.queues.borrow_mut()[index(stream)].pop_front() else {
            return false;
        };
        match op {
            Op::Kernel {
                name,
                grid,
                block,
                shared,
                mut slots,
            } => {
                let mut ptrs: Vec<*mut c_void> = slots
                    .iter_mut()
                    .map(|s| s as *mut u64 as *mut c_void)
                    .collect();
                let cname = CString::new(name).unwrap();
                // SAFETY: the launch was checked when it was queued (Device::launch's contract);
                // little-endian slots make the low bytes of each slot the 4-byte value an
                // `int`/`float` parameter reads.
                let rc = unsafe {
                    (self.launch)(
                        cname.as_ptr(),
                        grid.as_ptr(),
                        block.as_ptr(),
                        shared,
                        ptrs.as_mut_ptr(),
                    )
                };
                assert_eq!(rc, 0, "kernel {name} failed");
            }
            Op::Write { dst, data } => {
                // SAFETY: dst holds data.len() words (checked when queued).
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut f32, data.len())
                };
            }
            Op::Copy {
                dst, src, words, ..
            } => {
                // SAFETY: both hold `words` words (checked when queued); `copy` allows overlap.
                unsafe { std::ptr::copy(src as *const f32, dst as *mut f32, words) };
            }
            Op::Poison { dst, words } => {
                // SAFETY: dst holds `words` words (its arena class).
                unsafe { std::slice::from_raw_parts_mut(dst as *mut f32, words) }.fill(f32::NAN);
            }
            Op::Record(e) => self.events.borrow_mut()[e].at = Some(Instant::now()),
            Op::Wait(e) => self.run_to(e),
        }
        true
    }

    fn checked(op: &str, mem: &EmuMem, words: usize) -> Result<()> {
        if words <= mem.len {
            Ok(())
        } else {
            Err(emu_error(
                op,
                format!("{words} words asked of a buffer of {}", mem.len),
            ))
        }
    }

    fn host_copy(&self, stream: Stream, host: &mut EmuHost, op: Op) -> Result<()> {
        self.refuse_in_capture("host copy")?;
        if let Some(previous) = host.pending.take() {
            self.enqueue(stream, Op::Wait(previous.0));
        }
        self.enqueue(stream, op);
        host.pending = Some(self.new_event(stream));
        Ok(())
    }
}

impl Drop for EmuDevice {
    fn drop(&mut self) {
        self.run_all();
    }
}

/// The launchers on the emulated device.
pub fn backend() -> GpuBackend<EmuDevice> {
    GpuBackend::from_device(EmuDevice::new())
}

impl Device for EmuDevice {
    type Mem = Pooled<EmuMem>;
    type Event = EmuEvent;
    type Host = EmuHost;
    type Graph = EmuGraph;

    fn name(&self) -> String {
        "emu".into()
    }

    fn alloc(&self, words: usize) -> Result<Self::Mem> {
        let (mem, reused) = self.pool.take(words.max(1), |n| Ok(EmuMem::nan(n)))?;
        if reused {
            // In stream order: work queued before may still read the old contents.
            self.enqueue(
                Stream::Compute,
                Op::Poison {
                    dst: mem.ptr as u64,
                    words: mem.len,
                },
            );
        }
        Ok(mem)
    }

    fn upload(&self, host: &[f32]) -> Result<Self::Mem> {
        self.refuse_in_capture("upload")?;
        let mem = self.alloc(host.len())?;
        if !host.is_empty() {
            self.enqueue(
                Stream::Compute,
                Op::Write {
                    dst: mem.ptr as u64,
                    data: host.into(),
                },
            );
        }
        Ok(mem)
    }

    fn download(&self, mem: &Self::Mem, words: usize) -> Result<Vec<f32>> {
        self.refuse_in_capture("download")?;
        Self::checked("download", mem, words)?;
        while self.step(Stream::Compute) {}
        // SAFETY: ptr holds `len ≥ words` floats, and the compute stream has run dry.
        Ok(unsafe { std::slice::from_raw_parts(mem.ptr, words) }.to_vec())
    }

    fn ptr(&self, mem: &Self::Mem) -> u64 {
        mem.ptr as u64
    }

    fn copy(&self, dst: &Self::Mem, src: &Self::Mem, words: usize) -> Result<()> {
        Self::checked("copy", dst, words)?;
        Self::checked("copy", src, words)?;
        self.enqueue(
            Stream::Compute,
            Op::Copy {
                dst: dst.ptr as u64,
                src: src.ptr as u64,
                words,
                host: None,
            },
        );
        Ok(())
    }

    unsafe fn launch(&self, kernel: &'static str, g: Geometry, args: &[Arg]) -> Result<()> {
        let name = CString::new(kernel).unwrap();
        let grid = [g.grid.0, g.grid.1, g.grid.2];
        let block = [g.block.0, g.block.1, g.block.2];
        // SAFETY: null arguments ask the library whether it has the kernel, running nothing.
        let known = unsafe {
            (self.launch)(
                name.as_ptr(),
                grid.as_ptr(),
                block.as_ptr(),
                0,
                std::ptr::null_mut(),
            )
        } == 0;
        if !known {
            return Err(emu_error(kernel, "unknown kernel"));
        }
        self.launches.borrow_mut().push(kernel);
        // Each argument in its own 8-byte slot, as the kernel's parameter types read them.
        let slots = args
            .iter()
            .map(|a| match *a {
                Arg::Ptr(p) => p,
                Arg::I32(v) => v as u32 as u64,
                Arg::I64(v) => v as u64,
                Arg::F32(v) => v.to_bits() as u64,
            })
            .collect();
        self.enqueue(
            Stream::Compute,
            Op::Kernel {
                name: kernel,
                grid,
                block,
                shared: g.shared_bytes,
                slots,
            },
        );
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    fn alloc_host(&self, words: usize) -> Result<EmuHost> {
        self.refuse_in_capture("alloc_host")?;
        Ok(EmuHost {
            mem: Rc::new(EmuMem::nan(words)),
            pending: None,
        })
    }

    fn host_len(&self, host: &EmuHost) -> usize {
        host.mem.len
    }

    fn host_mut<'h>(&self, host: &'h mut EmuHost) -> Result<&'h mut [f32]> {
        if let Some(event) = host.pending.take() {
            self.run_to(event.0);
        }
        // SAFETY: the copies queued with this memory have run, and `&mut host` excludes other
        // host access; the memory lives as long as `host`.
        Ok(unsafe { std::slice::from_raw_parts_mut(host.mem.ptr, host.mem.len) })
    }

    fn copy_to_device(&self, dst: &Self::Mem, src: &mut EmuHost, words: usize) -> Result<()> {
        Self::checked("copy_to_device", dst, words)?;
        Self::checked("copy_to_device", &src.mem, words)?;
        let op = Op::Copy {
            dst: dst.ptr as u64,
            src: src.mem.ptr as u64,
            words,
            host: Some(src.mem.clone()),
        };
        self.host_copy(Stream::Upload, src, op)
    }

    fn copy_to_host(&self, dst: &mut EmuHost, src: &Self::Mem, words: usize) -> Result<()> {
        Self::checked("copy_to_host", src, words)?;
        Self::checked("copy_to_host", &dst.mem, words)?;
        let op = Op::Copy {
            dst: dst.mem.ptr as u64,
            src: src.ptr as u64,
            words,
            host: Some(dst.mem.clone()),
        };
        self.host_copy(Stream::Download, dst, op)
    }

    fn record(&self, stream: Stream) -> Result<EmuEvent> {
        self.refuse_in_capture("record")?;
        Ok(self.new_event(stream))
    }

    fn wait(&self, stream: Stream, event: &EmuEvent) -> Result<()> {
        self.refuse_in_capture("wait")?;
        self.enqueue(stream, Op::Wait(event.0));
        Ok(())
    }

    fn synchronize_event(&self, event: &EmuEvent) -> Result<()> {
        self.run_to(event.0);
        Ok(())
    }

    fn begin_capture(&self) -> Result<()> {
        self.refuse_in_capture("begin_capture")?;
        self.pool.begin_capture();
        *self.capture.borrow_mut() = Some(Vec::new());
        Ok(())
    }

    fn end_capture(&self) -> Result<EmuGraph> {
        let ops = self
            .capture
            .borrow_mut()
            .take()
            .ok_or_else(|| emu_error("end_capture", "no graph is being captured"))?;
        Ok(EmuGraph {
            ops,
            _retained: self.pool.end_capture(),
        })
    }

    fn replay(&self, graph: &EmuGraph) -> Result<()> {
        self.refuse_in_capture("replay")?;
        for op in &graph.ops {
            self.enqueue(Stream::Compute, op.clone());
        }
        Ok(())
    }

    fn range_push(&self, name: &str) {
        let mut depth = self.depth.borrow_mut();
        self.ranges.borrow_mut().push((*depth, name.to_string()));
        *depth += 1;
    }

    fn range_pop(&self) {
        *self.depth.borrow_mut() -= 1;
    }

    fn event(&self) -> Result<EmuEvent> {
        self.refuse_in_capture("event")?;
        Ok(self.new_event(Stream::Compute))
    }

    fn elapsed_ms(&self, start: &EmuEvent, end: &EmuEvent) -> Result<f64> {
        self.run_to(start.0);
        self.run_to(end.0);
        let events = self.events.borrow();
        let (a, b) = (events[start.0].at.unwrap(), events[end.0].at.unwrap());
        Ok(b.duration_since(a).as_secs_f64() * 1e3)
    }
}
