//! NumPy `.npz` archives as `numpy.savez` writes them: a zip of `.npy` files, stored
//! uncompressed, so that `numpy.load(path, mmap_mode=...)`-style readers see plain `.npy`
//! members. Arrays are f32, i64 or unicode strings (`<U`), C order, little-endian.

use std::io::Write;
use std::path::Path;

use zip::write::SimpleFileOptions;

use crate::error::{Error, Result};

/// One array of an archive.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    F32(Vec<u64>, Vec<f32>),
    I64(Vec<u64>, Vec<i64>),
    /// Unicode strings, stored as `<U{longest}` (UTF-32, zero-padded).
    Str(Vec<u64>, Vec<String>),
}

impl Array {
    /// A 1-D array of strings.
    pub fn strings<S: AsRef<str>>(values: &[S]) -> Array {
        Array::Str(
            vec![values.len() as u64],
            values.iter().map(|s| s.as_ref().to_string()).collect(),
        )
    }

    /// A 0-D string, as `numpy.array("rgb")`.
    pub fn string(value: &str) -> Array {
        Array::Str(Vec::new(), vec![value.to_string()])
    }

    fn shape(&self) -> &[u64] {
        match self {
            Array::F32(s, _) | Array::I64(s, _) | Array::Str(s, _) => s,
        }
    }

    fn len(&self) -> usize {
        match self {
            Array::F32(_, d) => d.len(),
            Array::I64(_, d) => d.len(),
            Array::Str(_, d) => d.len(),
        }
    }

    /// The `.npy` encoding.
    pub fn npy_bytes(&self) -> Result<Vec<u8>> {
        let expected: u64 = self.shape().iter().product();
        if expected != self.len() as u64 {
            return Err(Error::Request(format!(
                "npy: shape {:?} holds {expected} values, got {}",
                self.shape(),
                self.len()
            )));
        }
        let (descr, body) = match self {
            Array::F32(_, d) => ("<f4".to_string(), bytemuck::cast_slice(d).to_vec()),
            Array::I64(_, d) => ("<i8".to_string(), bytemuck::cast_slice(d).to_vec()),
            Array::Str(_, d) => {
                let width = d
                    .iter()
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(1);
                let mut body = Vec::with_capacity(d.len() * width * 4);
                for s in d {
                    let n = s.chars().count();
                    body.extend(s.chars().flat_map(|c| (c as u32).to_le_bytes()));
                    body.resize(body.len() + (width - n) * 4, 0);
                }
                (format!("<U{width}"), body)
            }
        };
        if cfg!(target_endian = "big") && !matches!(self, Array::Str(..)) {
            return Err(Error::Request(
                "npy: writing needs a little-endian machine".into(),
            ));
        }
        let mut bytes = header(&descr, self.shape());
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }
}

/// A version 1.0 `.npy` header for `descr` and `shape`, padded to a multiple of 64 bytes.
pub fn header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes
}

/// The `.npz` encoding of named arrays (`name` becomes the member `name.npy`).
pub fn npz_bytes(arrays: &[(&str, Array)]) -> Result<Vec<u8>> {
    let fail = |e: String| Error::Request(format!("npz: {e}"));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(
            arrays
                .iter()
                .any(|(_, a)| a.len() as u64 * 4 >= u32::MAX as u64 / 2),
        );
    for (name, array) in arrays {
        let bytes = array.npy_bytes()?;
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|e| fail(e.to_string()))?;
        zip.write_all(&bytes).map_err(|e| fail(e.to_string()))?;
    }
    let cursor = zip.finish().map_err(|e| fail(e.to_string()))?;
    Ok(cursor.into_inner())
}

/// Writes named arrays as `.npz`, atomically (see [`super::write_atomic`]).
pub fn write_npz(path: &Path, arrays: &[(&str, Array)]) -> Result<()> {
    super::write_atomic(path, &npz_bytes(arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_aligned_and_strings_are_utf32() {
        for shape in [&[][..], &[3], &[2, 5, 7]] {
            let h = header("<f4", shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
        }
        assert!(String::from_utf8_lossy(&header("<f4", &[3])).contains("'shape': (3,)"));
        assert!(String::from_utf8_lossy(&header("<U3", &[])).contains("'shape': ()"));
        let bytes = Array::strings(&["ab", "Δ"]).npy_bytes().unwrap();
        let h = header("<U2", &[2]).len();
        assert_eq!(
            &bytes[h..],
            &[97, 0, 0, 0, 98, 0, 0, 0, 0x94, 0x03, 0, 0, 0, 0, 0, 0]
        );
        assert!(Array::F32(vec![2], vec![1.0]).npy_bytes().is_err());
    }
}
