//! Compiles every `kernels/*.cu` to PTX with NVRTC and writes `$OUT_DIR/kernels.rs`, which the
//! CUDA backend includes: one `(stem, ptx)` pair per file, or the reason there are none.
//!
//! NVRTC is looked for, first found wins:
//! 1. `SGLRP_NVRTC_LIB`: the library file itself, or a folder holding `libnvrtc.so*`;
//! 2. `SGLRP_CUDA_WHEELS`, then `VIRTUAL_ENV`: a virtual environment (or its site-packages) with
//!    the pinned PyPI wheels `nvidia-cuda-nvrtc==13.0.88` and `nvidia-cuda-runtime==13.0.88`
//!    (`.ci/install_cuda_wheels.sh` installs them);
//!    and the project's own `.venv/`;
//! 3. `CUDA_PATH`, then `CUDA_HOME`: a CUDA toolkit (`lib64/`, `lib/`, `targets/x86_64-linux/lib/`);
//! 4. `/usr/local/cuda`;
//! 5. the dynamic loader's own search path (`LD_LIBRARY_PATH`, ldconfig).
//!
//! Nothing is downloaded. Without NVRTC the crate still builds, with one cargo warning, and the
//! CUDA backend says at run time that the binary has no kernels; `SGLRP_REQUIRE_KERNELS=1` makes
//! that a build error instead.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "src/backend/cuda/config.rs"]
mod config;

const ENV_VARS: [&str; 7] = [
    "SGLRP_NVRTC_LIB",
    "SGLRP_CUDA_WHEELS",
    "VIRTUAL_ENV",
    "CUDA_PATH",
    "CUDA_HOME",
    "SGLRP_REQUIRE_KERNELS",
    "SGLRP_CUDA_INCLUDE",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let kernels_dir = manifest.join("kernels");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/backend/cuda/config.rs");
    println!("cargo:rerun-if-changed=kernels");
    for var in ENV_VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let mut sources: Vec<PathBuf> = fs::read_dir(&kernels_dir)
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "cu" || e == "cuh"))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    let units: Vec<&PathBuf> = sources
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();

    let require = env::var("SGLRP_REQUIRE_KERNELS").is_ok_and(|v| v == "1");
    let found = match find_nvrtc() {
        Ok(found) => found,
        Err(searched) => {
            let reason = format!(
                "NVRTC (libnvrtc) was not found at build time; looked in: {searched}. \
                 Install it with `.ci/install_cuda_wheels.sh VENV` and rebuild with \
                 SGLRP_CUDA_WHEELS=VENV, or point SGLRP_NVRTC_LIB, CUDA_PATH or CUDA_HOME at \
                 a CUDA 13.0 installation"
            );
            if require {
                panic!("SGLRP_REQUIRE_KERNELS=1: {reason}");
            }
            println!("cargo:warning=sglrp: building without CUDA kernels: {reason}");
            write_kernels_rs(&out_dir, &[], Some(&reason), "none");
            return;
        }
    };

    let mut includes = vec![kernels_dir.display().to_string()];
    includes.extend(find_cuda_include(&found.path).map(|p| p.display().to_string()));
    let mut options: Vec<String> = config::DEFINES
        .iter()
        .map(|(name, value)| format!("-D{name}={value}"))
        .collect();
    options.extend(["--std=c++17".to_string(), "-lineinfo".to_string()]);

    let mut compiled = Vec::new();
    for unit in &units {
        let stem = unit.file_stem().unwrap().to_string_lossy().into_owned();
        let source = fs::read_to_string(unit).unwrap();
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(config::PTX_ARCH),
            include_paths: includes.clone(),
            options: options.clone(),
            name: Some(format!("{stem}.cu")),
            ..Default::default()
        };
        let ptx = match cudarc::nvrtc::compile_ptx_with_opts(&source, opts) {
            Ok(ptx) => ptx.to_src(),
            Err(cudarc::nvrtc::CompileError::CompileError { log, options, .. }) => panic!(
                "NVRTC failed on kernels/{stem}.cu (options {options:?}):\n{}",
                log.to_string_lossy()
            ),
            Err(e) => panic!("NVRTC failed on kernels/{stem}.cu: {e:?}"),
        };
        let ptx = ptx.trim_end_matches('\0').to_string();
        fs::write(out_dir.join(format!("{stem}.ptx")), &ptx).unwrap();
        compiled.push(stem);
    }
    let version = nvrtc_version();
    let origin = format!(
        "NVRTC {version} ({}), {}, {} kernels",
        found.path.display(),
        config::PTX_ARCH,
        compiled.len()
    );
    write_kernels_rs(&out_dir, &compiled, None, &origin);
}

/// The library that was found, kept loaded so that cudarc's own loader finds it by its soname.
struct Found {
    path: PathBuf,
}

/// Finds libnvrtc, loads it, and checks that cudarc sees it. Returns what was searched on failure.
fn find_nvrtc() -> Result<Found, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(v) = env::var_os("SGLRP_NVRTC_LIB") {
        let p = PathBuf::from(v);
        if p.is_dir() {
            candidates.extend(libs_in(&p));
        } else {
            candidates.push(p);
        }
    }
    for var in ["SGLRP_CUDA_WHEELS", "VIRTUAL_ENV"] {
        if let Some(v) = env::var_os(var) {
            candidates.extend(wheel_libs(Path::new(&v)));
        }
    }
    // The project's own virtual environment, where `.ci/run` installs the wheels.
    if let Some(root) = env::var_os("CARGO_MANIFEST_DIR") {
        candidates.extend(wheel_libs(&Path::new(&root).join(".venv")));
    }
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Some(v) = env::var_os(var) {
            candidates.extend(toolkit_libs(Path::new(&v)));
        }
    }
    candidates.extend(toolkit_libs(Path::new("/usr/local/cuda")));

    let mut searched: Vec<String> = Vec::new();
    for path in candidates {
        searched.push(path.display().to_string());
        if !path.is_file() {
            continue;
        }
        // SAFETY: loading libnvrtc runs only its initialisers, which have no preconditions.
        if let Ok(lib) = unsafe { libloading::Library::new(&path) } {
            // Keep it loaded for the rest of the build script: cudarc's loader opens the library
            // by its soname (`libnvrtc.so.13`), which the dynamic loader resolves to this copy.
            std::mem::forget(lib);
            // NVRTC opens its builtins (`libnvrtc-builtins.so.13.0`) by name too: load the copy
            // beside it the same way, when the loader's path would not find it.
            preload_builtins(&path);
            // SAFETY: only probes with dlopen; never panics.
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                return Ok(Found { path });
            }
        }
    }
    // Last, whatever the dynamic loader finds by name.
    searched.push("the dynamic loader's search path".into());
    // SAFETY: only probes with dlopen; never panics.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Ok(Found {
            path: PathBuf::from("libnvrtc from the loader's search path"),
        });
    }
    Err(searched.join(", "))
}

/// Loads every `libnvrtc-builtins.so*` beside `nvrtc` and keeps it loaded.
fn preload_builtins(nvrtc: &Path) {
    let Some(dir) = nvrtc.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("libnvrtc-builtins.so") && !name.contains("alt") {
            // SAFETY: as for libnvrtc itself.
            if let Ok(lib) = unsafe { libloading::Library::new(entry.path()) } {
                std::mem::forget(lib);
            }
        }
    }
}

/// `libnvrtc.so*` files in a folder, the versioned name first (the unversioned one is a link).
fn libs_in(dir: &Path) -> Vec<PathBuf> {
    let mut libs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n.starts_with("libnvrtc.so") && !n.contains("alt")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    libs.sort_by_key(|p| std::cmp::Reverse(p.to_string_lossy().len()));
    if libs.is_empty() {
        libs.push(dir.join("libnvrtc.so"));
    }
    libs
}

/// The site-packages folders of a virtual environment (or the folder itself, if it is one).
fn site_packages(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    for lib in ["lib", "lib64"] {
        if let Ok(entries) = fs::read_dir(root.join(lib)) {
            for e in entries.flatten() {
                let p = e.path().join("site-packages");
                if p.is_dir() {
                    dirs.push(p);
                }
            }
        }
    }
    dirs
}

/// NVRTC inside the pinned wheels: `nvidia/cu13/lib` (CUDA 13 wheels) or `nvidia/cuda_nvrtc/lib`.
fn wheel_libs(root: &Path) -> Vec<PathBuf> {
    site_packages(root)
        .into_iter()
        .flat_map(|sp| [sp.join("nvidia/cu13/lib"), sp.join("nvidia/cuda_nvrtc/lib")])
        .filter(|d| d.is_dir())
        .flat_map(|d| libs_in(&d))
        .collect()
}

fn toolkit_libs(root: &Path) -> Vec<PathBuf> {
    ["lib64", "lib", "targets/x86_64-linux/lib"]
        .iter()
        .map(|l| root.join(l))
        .filter(|d| d.is_dir())
        .flat_map(|d| libs_in(&d))
        .collect()
}

/// The CUDA headers (`cuda_fp16.h`, `mma.h`) for kernels that include them: `SGLRP_CUDA_INCLUDE`,
/// the runtime wheel's `include/` beside NVRTC's `lib/`, or a toolkit's `include/`.
fn find_cuda_include(nvrtc: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = env::var_os("SGLRP_CUDA_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(lib_dir) = nvrtc.parent() {
        candidates.push(lib_dir.join("../include"));
        candidates.push(lib_dir.join("../../include"));
        // cu12 wheel layout: nvidia/cuda_nvrtc/lib beside nvidia/cuda_runtime/include.
        candidates.push(lib_dir.join("../../cuda_runtime/include"));
    }
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Some(v) = env::var_os(var) {
            candidates.push(PathBuf::from(v).join("include"));
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates
        .into_iter()
        .find(|d| d.join("cuda_fp16.h").is_file())
        .map(|d| d.canonicalize().unwrap_or(d))
}

fn nvrtc_version() -> String {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (find_nvrtc succeeded); the pointers are to live locals.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if status == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        format!("{major}.{minor}")
    } else {
        "(unknown version)".into()
    }
}

fn write_kernels_rs(out_dir: &Path, stems: &[String], missing: Option<&str>, origin: &str) {
    let mut rs = String::from("// Generated by build.rs: the PTX of every kernels/*.cu.\n");
    rs.push_str("/// `(file stem, PTX)` for every kernel file.\n");
    rs.push_str("pub const PTX: &[(&str, &str)] = &[\n");
    for stem in stems {
        writeln!(
            rs,
            "    ({stem:?}, include_str!(concat!(env!(\"OUT_DIR\"), \"/{stem}.ptx\"))),"
        )
        .unwrap();
    }
    rs.push_str("];\n");
    rs.push_str("/// Why there are no kernels, when there are none.\n");
    writeln!(rs, "pub const MISSING: Option<&str> = {missing:?};").unwrap();
    rs.push_str("/// Which NVRTC built them, for which target.\n");
    writeln!(rs, "pub const BUILT_WITH: &str = {origin:?};").unwrap();
    fs::write(out_dir.join("kernels.rs"), rs).unwrap();
}
