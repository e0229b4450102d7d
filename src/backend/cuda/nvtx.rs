//! NVTX ranges, loaded at run time and optional.
//!
//! cudarc's `nvtx` module looks only for `libnvToolsExt`, which CUDA 13 no longer ships, and
//! panics when it is missing. CUDA 13's NVTX is header-only plus `libnvtx3interop.so.1` (the
//! `nvidia-nvtx` wheel, which PyTorch installs), exporting the same C functions. This loads
//! whichever it finds, first: `SGLRP_NVTX_LIB` (a file), `libnvToolsExt.so.1`,
//! `libnvtx3interop.so.1` on the loader's path, then the same names under `CUDA_PATH`,
//! `CUDA_HOME` and `/usr/local/cuda`. Without one, ranges are silently skipped: they only
//! label a profiler's timeline. A profiler (`ncu --nvtx`, `nsys`) hooks in through the library's
//! `NVTX_INJECTION64_PATH` mechanism.
//!
//! A name with slashes opens nested ranges, one per part: `relevance/conv3_2` is `conv3_2`
//! inside `relevance`, which is how Nsight shows a stack and what
//! `ncu --nvtx-include "relevance/conv3_2/"` matches (ncu reads `/` as nesting, never as part of
//! a name).

use std::ffi::{CString, c_char, c_int};
use std::path::PathBuf;
use std::sync::Mutex;

type PushFn = unsafe extern "C" fn(*const c_char) -> c_int;
type PopFn = unsafe extern "C" fn() -> c_int;

/// A loaded NVTX library.
pub struct Nvtx {
    push: PushFn,
    pop: PopFn,
    /// Where it was loaded from.
    pub origin: String,
    /// How many parts each open range pushed.
    open: Mutex<Vec<usize>>,
    _lib: libloading::Library,
}

const NAMES: [&str; 4] = [
    "libnvToolsExt.so.1",
    "libnvToolsExt.so",
    "libnvtx3interop.so.1",
    "libnvtx3interop.so",
];

impl Nvtx {
    /// The first NVTX library found, or `None`.
    pub fn load() -> Option<Nvtx> {
        let mut candidates: Vec<PathBuf> = std::env::var_os("SGLRP_NVTX_LIB")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        candidates.extend(NAMES.iter().map(PathBuf::from));
        for var in ["CUDA_PATH", "CUDA_HOME"] {
            if let Some(root) = std::env::var_os(var) {
                let root = PathBuf::from(root);
                candidates.extend(NAMES.iter().map(|n| root.join("lib64").join(n)));
            }
        }
        candidates.extend(
            NAMES
                .iter()
                .map(|n| PathBuf::from("/usr/local/cuda/lib64").join(n)),
        );
        candidates.into_iter().find_map(Self::open)
    }

    fn open(path: PathBuf) -> Option<Nvtx> {
        // SAFETY: loading an NVTX library runs only its initialisers, which have no
        // preconditions; the symbols are looked up with the C signatures NVTX documents
        // (`int nvtxRangePushA(const char*)`, `int nvtxRangePop(void)`).
        unsafe {
            let lib = libloading::Library::new(&path).ok()?;
            let push = *lib.get::<PushFn>(b"nvtxRangePushA\0").ok()?;
            let pop = *lib.get::<PopFn>(b"nvtxRangePop\0").ok()?;
            Some(Nvtx {
                push,
                pop,
                origin: path.display().to_string(),
                open: Mutex::new(Vec::new()),
                _lib: lib,
            })
        }
    }

    pub fn push(&self, name: &str) {
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts {
            let part = CString::new(part.replace('\0', " ")).unwrap_or_default();
            // SAFETY: `part` is a valid NUL-terminated string that outlives the call; the
            // function pointer stays valid while `_lib` is loaded, which is as long as `self`.
            unsafe {
                (self.push)(part.as_ptr());
            }
        }
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(parts.len());
    }

    pub fn pop(&self) {
        let parts = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or(1);
        for _ in 0..parts {
            // SAFETY: as in `push`; popping with no open range is a no-op in NVTX.
            unsafe {
                (self.pop)();
            }
        }
    }
}
