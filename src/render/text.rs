//! Captions: the bundled DejaVu Sans font, drawn with `imageproc`.
//!
//! `fonts/DejaVuSans.ttf` is DejaVu Sans 2.37 from Debian's `fonts-dejavu-core`. Its licence is
//! the Bitstream Vera licence (DejaVu's changes are public domain): it may be copied and
//! redistributed, with the notice in `fonts/DejaVuSans.LICENSE` kept beside it.

use std::sync::OnceLock;

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};

pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// The bundled font.
pub fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(DEJAVU_SANS).expect("the bundled DejaVu Sans parses (tested)")
    })
}

/// Width and height in pixels of `text` at `size` pixels.
pub fn text_size(text: &str, size: f32) -> (u32, u32) {
    imageproc::drawing::text_size(PxScale::from(size), font(), text)
}

/// `text`, shortened with an ellipsis until it fits in `width` pixels at `size`.
pub fn fit_text(text: &str, size: f32, width: u32) -> String {
    if text_size(text, size).0 <= width {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().collect::<String>() + "…";
        if text_size(&candidate, size).0 <= width {
            return candidate;
        }
    }
    String::new()
}

/// Draws `text` with its top-left corner at (x, y).
pub fn draw_text(image: &mut RgbImage, text: &str, x: i32, y: i32, size: f32, color: [u8; 3]) {
    imageproc::drawing::draw_text_mut(image, Rgb(color), x, y, PxScale::from(size), font(), text);
}

/// Draws `text` centred horizontally in the span `[x, x + width)`, shortened to fit.
pub fn draw_text_centered(
    image: &mut RgbImage,
    text: &str,
    x: i32,
    width: u32,
    y: i32,
    size: f32,
    color: [u8; 3],
) {
    let text = fit_text(text, size, width);
    let (w, _) = text_size(&text, size);
    draw_text(
        image,
        &text,
        x + (width as i32 - w as i32) / 2,
        y,
        size,
        color,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_draws_ink() {
        let mut img = RgbImage::from_pixel(80, 24, Rgb([255, 255, 255]));
        draw_text(&mut img, "SGLRP", 2, 2, 16.0, [0, 0, 0]);
        assert!(img.pixels().any(|p| p.0[0] < 128));
        let (w, h) = text_size("SGLRP", 16.0);
        assert!(w > 20 && h > 8, "{w}×{h}");
    }

    #[test]
    fn long_text_is_shortened() {
        let long = "a very long class name that does not fit";
        let short = fit_text(long, 14.0, 60);
        assert!(short.ends_with('…'));
        assert!(text_size(&short, 14.0).0 <= 60);
        assert_eq!(fit_text("ok", 14.0, 60), "ok");
    }
}
