//! `EmuDevice`: sglrp's `Device` trait on the CPU, running the real `kernels/*.cu` sources
//! compiled by the host C++ compiler through `cuda_emu.hpp`. With it the CUDA launchers, the
//! device-side weight preparation and the kernels' indexing, tiling and barriers are checked
//! against the CPU backend on machines without a GPU.
//!
//! Buffers are filled with NaN when allocated, so an output element a kernel forgets to write
//! fails the comparison.
#![allow(dead_code)]

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use sglrp::backend::cuda::config::{self, Geometry};
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

/// Host memory standing in for device memory.
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
}

pub struct EmuDevice {
    launch: LaunchFn,
    _lib: libloading::Library,
    /// Every range opened, in order, with the nesting depth when opened.
    pub ranges: RefCell<Vec<(usize, String)>>,
    depth: RefCell<usize>,
    /// Every kernel launched, in order.
    pub launches: RefCell<Vec<&'static str>>,
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
            }
        }
    }
}

/// The launchers on the emulated device.
pub fn backend() -> GpuBackend<EmuDevice> {
    GpuBackend::from_device(EmuDevice::new())
}

impl Device for EmuDevice {
    type Mem = EmuMem;
    type Event = Instant;

    fn name(&self) -> String {
        "emu".into()
    }

    fn alloc(&self, words: usize) -> Result<EmuMem> {
        Ok(EmuMem::new(vec![f32::NAN; words.max(1)].into_boxed_slice()))
    }

    fn upload(&self, host: &[f32]) -> Result<EmuMem> {
        let mut v = host.to_vec();
        if v.is_empty() {
            v.push(f32::NAN);
        }
        Ok(EmuMem::new(v.into_boxed_slice()))
    }

    fn download(&self, mem: &EmuMem, words: usize) -> Result<Vec<f32>> {
        assert!(words <= mem.len, "download past the end of an allocation");
        // SAFETY: ptr holds `len ≥ words` floats, and no kernel runs while we read.
        Ok(unsafe { std::slice::from_raw_parts(mem.ptr, words) }.to_vec())
    }

    fn ptr(&self, mem: &EmuMem) -> u64 {
        mem.ptr as u64
    }

    unsafe fn launch(&self, kernel: &'static str, g: Geometry, args: &[Arg]) -> Result<()> {
        self.launches.borrow_mut().push(kernel);
        // Each argument in its own 8-byte slot, as the kernel's parameter types read them.
        let mut slots: Vec<u64> = args
            .iter()
            .map(|a| match *a {
                Arg::Ptr(p) => p,
                Arg::I32(v) => v as u32 as u64,
                Arg::I64(v) => v as u64,
                Arg::F32(v) => v.to_bits() as u64,
            })
            .collect();
        let mut ptrs: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        let name = CString::new(kernel).unwrap();
        let grid = [g.grid.0, g.grid.1, g.grid.2];
        let block = [g.block.0, g.block.1, g.block.2];
        // SAFETY: forwarded from the caller; little-endian slots make the low bytes of each
        // slot the 4-byte value an `int`/`float` parameter reads.
        let rc = unsafe {
            (self.launch)(
                name.as_ptr(),
                grid.as_ptr(),
                block.as_ptr(),
                g.shared_bytes,
                ptrs.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(Error::Backend {
                backend: "emu",
                op: kernel.into(),
                message: "unknown kernel".into(),
            });
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

    fn event(&self) -> Result<Instant> {
        Ok(Instant::now())
    }

    fn elapsed_ms(&self, start: &Instant, end: &Instant) -> Result<f64> {
        Ok(end.duration_since(*start).as_secs_f64() * 1e3)
    }
}
