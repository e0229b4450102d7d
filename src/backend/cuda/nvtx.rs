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

use std::ffi::{CString, c_char, c_int};
use std::path::PathBuf;

type PushFn = unsafe extern "C" fn(*const c_char) -> c_int;
type PopFn = unsafe extern "C" fn() -> c_int;

/// A loaded NVTX library.
pub struct Nvtx {
    push: PushFn,
    pop: PopFn,
    /// Where it was loaded from.
    pub origin: String,
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
                _lib: lib,
            })
        }
    }

    pub fn push(&self, name: &str) {
        let name = CString::new(name.replace('\0', " ")).unwrap_or_default();
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the function
        // pointer stays valid while `_lib` is loaded, which is as long as `self`.
        unsafe {
            (self.push)(name.as_ptr());
        }
    }

    pub fn pop(&self) {
        // SAFETY: as in `push`; popping with no open range is a no-op in NVTX.
        unsafe {
            (self.pop)();
        }
    }
}
