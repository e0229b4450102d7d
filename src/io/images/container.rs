//! What an image file's container says before its decoder is trusted with it: whether the file
//! holds all of its data (a JPEG's end-of-image marker, a PNG's `IEND` chunk, a WebP's RIFF
//! length; the decoders do not say: a JPEG cut short decodes without an error, the missing part
//! filled with grey), and whether a TIFF's first directory points inside the file (its decoder
//! allocates what a value's count asks for before it reads the value, before any limit applies).

use image::ImageFormat;

/// What a file's container says about its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The container ends where it says it does (or the format is not checked).
    Complete,
    /// The file ends before `missing`.
    Truncated {
        missing: &'static str,
        /// Whether a successful decode still means every pixel was in the file: PNG's and
        /// WebP's decoders fail when pixel data is missing, JPEG's invents it.
        pixels_checked: bool,
    },
}

/// Reads the container of `bytes` in `format`; formats whose decoders fail on every truncation
/// (BMP, TIFF) are `Complete` here.
pub fn ending(format: ImageFormat, bytes: &[u8]) -> Ending {
    let ends = match format {
        ImageFormat::Jpeg => jpeg_ends(bytes),
        ImageFormat::Png => png_ends(bytes),
        ImageFormat::WebP => webp_ends(bytes),
        _ => true,
    };
    if ends {
        return Ending::Complete;
    }
    match format {
        ImageFormat::Jpeg => Ending::Truncated {
            missing: "its end-of-image marker",
            pixels_checked: false,
        },
        ImageFormat::Png => Ending::Truncated {
            missing: "its IEND chunk",
            pixels_checked: true,
        },
        _ => Ending::Truncated {
            missing: "the length its RIFF header gives",
            pixels_checked: true,
        },
    }
}

/// Whether the marker segments from SOI lead to an EOI before the file ends. Entropy-coded data
/// after each SOS runs to the next marker that is neither a stuffed `FF 00` nor a restart
/// marker; bytes between segments that are no marker are passed over, as decoders do.
fn jpeg_ends(bytes: &[u8]) -> bool {
    let len = bytes.len();
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return true;
    }
    let mut i = 2;
    loop {
        // The next marker: 0xFF (any number of fill bytes), then its code.
        let Some(ff) = bytes[i..].iter().position(|&b| b == 0xFF) else {
            return false;
        };
        i += ff;
        while i < len && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match code {
            0xD9 => return true,
            // Stand-alone markers (restart, TEM) and a stray stuffed zero.
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(length) = bytes.get(i..i + 2) else {
            return false;
        };
        i += usize::from(u16::from_be_bytes([length[0], length[1]]));
        if i > len {
            return false;
        }
        if code == 0xDA {
            // Entropy-coded data up to the next real marker.
            loop {
                let Some(ff) = bytes[i..].iter().position(|&b| b == 0xFF) else {
                    return false;
                };
                let mut k = i + ff + 1;
                while k < len && bytes[k] == 0xFF {
                    k += 1;
                }
                match bytes.get(k) {
                    None => return false,
                    Some(0x00 | 0xD0..=0xD7) => i = k + 1,
                    Some(_) => {
                        i += ff;
                        break;
                    }
                }
            }
        }
    }
}

/// Whether the chunks after the signature lead to an `IEND` chunk (with its CRC) inside the file.
fn png_ends(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return true;
    }
    let mut i: u64 = 8;
    let len = bytes.len() as u64;
    loop {
        let Some(head) = bytes.get(i as usize..i as usize + 8) else {
            return false;
        };
        let data = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        // Length, type, data, CRC.
        let end = i + 12 + data;
        if end > len {
            return false;
        }
        if &head[4..8] == b"IEND" {
            return true;
        }
        i = end;
    }
}

/// Whether the file is at least as long as its RIFF header says.
fn webp_ends(bytes: &[u8]) -> bool {
    match bytes.get(4..8) {
        Some(size) => {
            let size = u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]]));
            bytes.len() as u64 >= 8 + size
        }
        None => true,
    }
}

/// Checks that the first directory of a TIFF (classic or BigTIFF) and the values its entries
/// point to lie inside the file. Files that are no TIFF pass: their decoder decides.
pub fn check_tiff(bytes: &[u8]) -> Result<(), String> {
    let little = match bytes.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Ok(()),
    };
    let uint = |at: u64, size: usize| -> Option<u64> {
        let at = usize::try_from(at).ok()?;
        let field = bytes.get(at..at.checked_add(size)?)?;
        let mut v = 0u64;
        for i in 0..size {
            let b = if little {
                field[size - 1 - i]
            } else {
                field[i]
            };
            v = v << 8 | u64::from(b);
        }
        Some(v)
    };
    // (entry count size, entry size, count and value size: 4 classic, 8 BigTIFF).
    let (ifd, count_size, word) = match uint(2, 2) {
        Some(42) => (uint(4, 4), 2, 4),
        Some(43) => (uint(8, 8), 8, 8),
        _ => return Ok(()),
    };
    let beyond = |what: &str| {
        Err(format!(
            "corrupt TIFF: {what} lies beyond the end of the file"
        ))
    };
    let Some(ifd) = ifd else {
        return beyond("its header");
    };
    let Some(entries) = uint(ifd, count_size) else {
        return beyond("its first directory");
    };
    let entry_size = 4 + 2 * word as u64;
    let first = ifd + count_size as u64;
    let len = bytes.len() as u64;
    if entries
        .checked_mul(entry_size)
        .and_then(|n| n.checked_add(first))
        .is_none_or(|end| end > len)
    {
        return beyond("its first directory");
    }
    for k in 0..entries {
        let at = first + k * entry_size;
        let (Some(tag), Some(kind), Some(count)) =
            (uint(at, 2), uint(at + 2, 2), uint(at + 4, word))
        else {
            return beyond("its first directory");
        };
        let unit = match kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 | 16 | 17 | 18 => 8,
            // Types the decoder does not know it passes over.
            _ => continue,
        };
        let Some(size) = count.checked_mul(unit) else {
            return beyond(&format!("the value of tag {tag}"));
        };
        if size <= word as u64 {
            continue;
        }
        let inside = uint(at + 4 + word as u64, word)
            .and_then(|offset| offset.checked_add(size))
            .is_some_and(|end| end <= len);
        if !inside {
            return beyond(&format!("the value of tag {tag} ({size} bytes)"));
        }
    }
    Ok(())
}
