//! File input and output shared by the library and the CLI: images in ([`images`]), class-name
//! files ([`classes`]) and other outside text ([`text`]), PNG, `.npy` and `.npz` out
//! ([`images`], [`npy`], [`npz`]), relevance maps as arrays ([`array`]), every output written
//! atomically.

pub mod array;
pub mod classes;
pub mod images;
pub mod npy;
pub mod npz;
pub mod text;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Writes `bytes` to a temporary file beside `path`, then renames it into place: an interrupted
/// run leaves either the old file or the new one, never a truncated one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    // Unique per process, call and moment: processes on several hosts (shards of one run) may
    // write the same file of a shared folder at once, and each rename must find its own file.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = dir.join(format!(
        ".{}.{}-{nanos}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
