//! Reading input images of any supported format, size and pixel type, and encoding outputs.
//!
//! An input is read only if it is a regular file no larger than its pixel limit allows; its
//! pixel count is checked from the header before any pixel is decoded, and the decoders' memory
//! is limited. A file cut short is refused where its decoder would invent the missing pixels
//! (JPEG fills them with grey) and warned about where every pixel was still there (a PNG or WebP
//! whose last chunk is cut).

mod container;

use std::io::{Cursor, Read};
use std::path::Path;

use image::{ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};
use container::{Ending, check_tiff, ending};

/// File name extensions searched for in folders (lower case). A file named explicitly is read
/// whatever its extension: the format is recognised from its content.
pub const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"];

/// The default limit on an image's pixel count, checked from its header before decoding.
pub const MAX_PIXELS: u64 = 100_000_000;

/// Room for what an image file holds besides its pixels (metadata, thumbnails, ICC profiles)
/// and for the decoders' own buffers.
const OVERHEAD_BYTES: u64 = 64 << 20;

/// Bytes per pixel of the largest pixel type (16-bit RGBA).
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Whether `path` has one of the [`EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// An image as read: 8-bit RGB, and what was odd about its file but did not change its pixels.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub image: RgbImage,
    /// One line each, for the caller to print (the path is not repeated in them).
    pub warnings: Vec<String>,
}

/// Reads an image as 8-bit RGB: grey is replicated, alpha dropped (as PIL's `convert("RGB")`),
/// 16-bit channels scaled to 8 bits. Images with more than `max_pixels` pixels are refused
/// from their header, before any pixel is decoded; files larger than such an image could be are
/// refused before they are read.
pub fn read_image(path: &Path, max_pixels: u64) -> Result<Decoded> {
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
    if !meta.is_file() {
        return Err(fail(
            "not a regular file (a pipe or a device); expected an image file".into(),
        ));
    }
    if meta.len() == 0 {
        return Err(fail("empty file".into()));
    }
    let max_bytes = max_pixels
        .saturating_mul(MAX_BYTES_PER_PIXEL)
        .saturating_add(OVERHEAD_BYTES);
    let too_large = |bytes: u64| {
        fail(format!(
            "file of {:.1} MB; an image of at most {:.1} megapixels takes at most {:.1} MB",
            bytes as f64 / 1e6,
            max_pixels as f64 / 1e6,
            max_bytes as f64 / 1e6
        ))
    };
    if meta.len() > max_bytes {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    // The content decides; the name only when the content is not recognised (a JPEG so
    // damaged that its signature is gone is still reported as a corrupt JPEG).
    let mut reader = ImageReader::new(Cursor::new(&bytes[..]));
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let reader = reader.with_guessed_format().map_err(io)?;
    let Some(format) = reader.format() else {
        return Err(fail(
            "not a recognised image (expected JPEG, PNG, WebP, BMP or TIFF)".into(),
        ));
    };
    if format == ImageFormat::Tiff {
        check_tiff(&bytes).map_err(fail)?;
    }
    let (w, h) = reader.into_dimensions().map_err(|e| fail(describe(&e)))?;
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
    let ending = ending(format, &bytes);
    let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    let name = format!("{format:?}").to_uppercase();
    let (image, warnings) = match (reader.decode(), ending) {
        (Err(_), Ending::Truncated { missing, .. }) => {
            return Err(fail(format!(
                "truncated {name}: the file ends before {missing}"
            )));
        }
        (Err(e), Ending::Complete) => return Err(fail(describe(&e))),
        (
            Ok(_),
            Ending::Truncated {
                missing,
                pixels_checked: false,
            },
        ) => {
            return Err(fail(format!(
                "truncated {name}: the file ends before {missing}, and the decoder would fill \
                 the missing pixels with grey; re-download or re-encode it"
            )));
        }
        (Ok(image), Ending::Truncated { missing, .. }) => (
            image,
            vec![format!(
                "the file ends before {missing}, but every pixel was in it"
            )],
        ),
        (Ok(image), Ending::Complete) => (image, Vec::new()),
    };
    Ok(Decoded {
        image: image.to_rgb8(),
        warnings,
    })
}

/// [`read_image`] without its warnings: the pixels only.
pub fn read_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    read_image(path, max_pixels).map(|d| d.image)
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
