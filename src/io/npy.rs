//! NumPy `.npy` files of f32 arrays (little-endian `<f4`, C order), through `npyz`.

use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{Error, Result};

/// The `.npy` encoding of `data` with `shape` (C order).
pub fn npy_bytes(shape: &[u64], data: &[f32]) -> Result<Vec<u8>> {
    let expected: u64 = shape.iter().product();
    if expected != data.len() as u64 {
        return Err(Error::Request(format!(
            "npy: shape {shape:?} holds {expected} values, got {}",
            data.len()
        )));
    }
    let mut bytes = Vec::with_capacity(data.len() * 4 + 128);
    let encode = |bytes: &mut Vec<u8>| -> std::io::Result<()> {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(shape)
            .writer(bytes)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    };
    encode(&mut bytes).map_err(|source| Error::Io {
        path: "<npy>".into(),
        source,
    })?;
    Ok(bytes)
}

/// Writes `data` with `shape` as `.npy`, atomically (see [`super::write_atomic`]).
pub fn write_npy(path: &Path, shape: &[u64], data: &[f32]) -> Result<()> {
    super::write_atomic(path, &npy_bytes(shape, data)?)
}

/// Reads an f32 `.npy` file: its shape and values.
pub fn read_npy(path: &Path) -> Result<(Vec<u64>, Vec<f32>)> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let file = npyz::NpyFile::new(&bytes[..]).map_err(io)?;
    let shape = file.shape().to_vec();
    let data = file.into_vec::<f32>().map_err(io)?;
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_numpy_header() {
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes = npy_bytes(&[3, 2, 4], &data).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        let header = String::from_utf8_lossy(&bytes[..128]);
        assert!(header.contains("'descr': '<f4'"), "{header}");
        assert!(header.contains("'shape': (3, 2, 4"), "{header}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write_npy(&path, &[3, 2, 4], &data).unwrap();
        assert_eq!(read_npy(&path).unwrap(), (vec![3, 2, 4], data));
        assert!(npy_bytes(&[5], &[1.0]).is_err());
    }
}
