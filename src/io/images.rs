//! Reading input images of any supported format, size and pixel type, and encoding outputs.

use std::io::Cursor;
use std::path::Path;

use image::{ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// File name extensions searched for in folders (lower case). A file named explicitly is read
/// whatever its extension: the format is recognised from its content.
pub const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"];

/// The default limit on an image's pixel count, checked from its header before decoding.
pub const MAX_PIXELS: u64 = 100_000_000;

/// Whether `path` has one of the [`EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads an image as 8-bit RGB: grey is replicated, alpha dropped (as PIL's `convert("RGB")`),
/// 16-bit channels scaled to 8 bits. Images with more than `max_pixels` pixels are refused
/// from their header, before any pixel is decoded.
pub fn read_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let fail = |message: String| Error::Image {
        path: path.to_owned(),
        message,
    };
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(fail("is a folder, not an image".into()));
    }
    if meta.len() == 0 {
        return Err(fail("empty file".into()));
    }
    let open = || -> Result<ImageReader<_>> {
        let reader = ImageReader::open(path)
            .map_err(io)?
            .with_guessed_format()
            .map_err(io)?;
        if reader.format().is_none() {
            return Err(fail(
                "not a recognised image (expected JPEG, PNG, WebP, BMP or TIFF)".into(),
            ));
        }
        Ok(reader)
    };
    let (w, h) = open()?.into_dimensions().map_err(|e| fail(describe(&e)))?;
    let pixels = w as u64 * h as u64;
    if pixels > max_pixels {
        return Err(fail(format!(
            "image is {w}×{h} = {:.1} megapixels; the limit is {:.1} megapixels",
            pixels as f64 / 1e6,
            max_pixels as f64 / 1e6
        )));
    }
    if pixels == 0 {
        return Err(fail(format!("image is {w}×{h}: no pixels")));
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    // Room for the largest pixel type (16-bit RGBA) plus the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| fail(describe(&e)))?;
    Ok(decoded.to_rgb8())
}

/// A one-line description of a decoding failure.
fn describe(e: &ImageError) -> String {
    match e {
        ImageError::Unsupported(u) => format!("unsupported image: {u}"),
        ImageError::Limits(l) => format!("image too large to decode: {l}"),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated image (the file ends early)".into()
        }
        other => format!("corrupt or truncated image: {other}"),
    }
    .replace('\n', " ")
}

/// The PNG encoding of an image.
pub fn png_bytes(image: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| Error::Image {
            path: "<png>".into(),
            message: format!("PNG encoding failed: {e}"),
        })?;
    Ok(bytes)
}

/// Writes an image as PNG, atomically (see [`super::write_atomic`]).
pub fn write_png(path: &Path, image: &RgbImage) -> Result<()> {
    let bytes = png_bytes(image).map_err(|e| match e {
        Error::Image { message, .. } => Error::Image {
            path: path.to_owned(),
            message,
        },
        other => other,
    })?;
    super::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_case_insensitive() {
        assert!(has_image_extension(Path::new("a/b.JPG")));
        assert!(has_image_extension(Path::new("b.tiff")));
        assert!(!has_image_extension(Path::new("b.txt")));
        assert!(!has_image_extension(Path::new("png")));
    }

    #[test]
    fn png_round_trips() {
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let bytes = png_bytes(&img).unwrap();
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(back, img);
    }
}
