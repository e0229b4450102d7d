//! Reading a model file without trusting it: only a regular file is opened (a FIFO would block
//! and `/dev/zero` never ends), and its 8-byte header length and JSON header are read and checked
//! against the file's size before the tensor data is.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use safetensors::tensor::Metadata;

use crate::error::{Error, Result};

/// safetensors' own limit on the JSON header.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The whole file, once its header has been found consistent with its size.
pub(super) fn read_safetensors(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let invalid =
        |message: String| Error::weights(path, format!("not a valid safetensors file: {message}"));
    let kind = std::fs::metadata(path).map_err(io)?.file_type();
    if !kind.is_file() {
        return Err(Error::weights(
            path,
            format!(
                "is a {}, not a regular file; expected a safetensors file",
                describe(kind)
            ),
        ));
    }
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size < 8 {
        return Err(invalid(format!(
            "{size} bytes, fewer than the 8 of the header length"
        )));
    }
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(io)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > size - 8 {
        return Err(invalid(format!(
            "the header length {header_len} exceeds the file's {size} bytes"
        )));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(invalid(format!(
            "a {header_len}-byte header is over safetensors' limit of {MAX_HEADER_BYTES}"
        )));
    }
    let mut bytes = Vec::new();
    let whole = usize::try_from(size).ok();
    if whole.is_none_or(|n| bytes.try_reserve_exact(n).is_err()) {
        return Err(Error::weights(
            path,
            format!("{size} bytes do not fit in memory"),
        ));
    }
    bytes.extend_from_slice(&prefix);
    (&mut file)
        .take(header_len)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let header: Metadata =
        serde_json::from_slice(&bytes[8..]).map_err(|e| invalid(format!("header: {e}")))?;
    let data = size - 8 - header_len;
    if header.data_len() as u64 != data {
        return Err(invalid(format!(
            "the header describes {} bytes of tensor data, the file holds {data}",
            header.data_len()
        )));
    }
    file.take(data).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 != size {
        return Err(invalid(format!(
            "{} of {size} bytes could be read (the file changed while it was read)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        return "folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        } else if kind.is_char_device() || kind.is_block_device() {
            return "device";
        } else if kind.is_socket() {
            return "socket";
        }
    }
    "special file"
}
