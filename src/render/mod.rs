//! Pictures of relevance maps: colour maps, heatmap images (docs/method.md §Heatmaps), overlays on the input image
//! and the comparison grid laid out like the paper's figures (input | Guided Grad-CAM | LRP |
//! CLRP | SGLRP, one row per target).

pub mod chart;
pub mod colormap;
pub mod text;

pub use colormap::ColorMap;

use image::{Rgb, RgbImage, imageops::FilterType};

use crate::heatmap::{HeatmapKind, heatmap, normalize};

/// Colours a map `(H, W)` of values in [−1, 1].
pub fn colorize(map: &[f32], width: u32, height: u32, cmap: ColorMap) -> RgbImage {
    debug_assert_eq!(map.len(), (width * height) as usize);
    let mut img = RgbImage::new(width, height);
    for (pixel, &v) in img.pixels_mut().zip(map) {
        *pixel = Rgb(cmap.color(v));
    }
    img
}

/// The display map of a map `(C, H, W)` (docs/method.md §Heatmaps): `Σ_c max(R_c, 0)` divided by its largest
/// absolute value, so it lies in [0, 1] (all zeros stay zeros). Returns `(H, W)`.
pub fn display_map(relevance: &[f32], channels: usize) -> Vec<f32> {
    normalize(&heatmap(relevance, channels, HeatmapKind::Positive))
}

/// The heatmap image of a map `(C, H, W)` (docs/method.md §Heatmaps), one pixel per input pixel.
pub fn heatmap_image(
    relevance: &[f32],
    channels: usize,
    width: u32,
    height: u32,
    cmap: ColorMap,
) -> RgbImage {
    colorize(&display_map(relevance, channels), width, height, cmap)
}

/// The map's colours over a grey version of the image: each pixel's colour is blended in with
/// weight `0.85·√|v|`, so pixels without relevance show the image and the strongest show
/// mostly the map. `image` and `map` `(H, W)` have the same size.
pub fn overlay(image: &RgbImage, map: &[f32], cmap: ColorMap) -> RgbImage {
    let (w, h) = image.dimensions();
    debug_assert_eq!(map.len(), (w * h) as usize);
    let mut out = RgbImage::new(w, h);
    for ((dst, src), &v) in out.pixels_mut().zip(image.pixels()).zip(map) {
        let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
        let [r, g, b] = src.0.map(f32::from);
        let grey = 0.299 * r + 0.587 * g + 0.114 * b;
        let color = cmap.color(v);
        let alpha = 0.85 * v.abs().sqrt();
        *dst = Rgb(color.map(|c| (grey * (1.0 - alpha) + c as f32 * alpha).round() as u8));
    }
    out
}

/// One row of a comparison grid: its caption and one picture per method column.
#[derive(Clone, Debug)]
pub struct GridRow {
    pub caption: String,
    pub cells: Vec<RgbImage>,
}

/// The comparison grid: an optional title, then column headers (`input` and one per method),
/// then per row a caption line above the input image and the row's pictures. Pictures are
/// scaled by a whole factor (nearest neighbour, so relevance pixels stay sharp) to at least
/// 160 pixels.
pub fn comparison_grid(
    title: Option<&str>,
    input: &RgbImage,
    headers: &[String],
    rows: &[GridRow],
) -> RgbImage {
    const WHITE: [u8; 3] = [255, 255, 255];
    const INK: [u8; 3] = [20, 20, 20];
    const GAP: u32 = 6;
    const MARGIN: u32 = 10;
    let (iw, ih) = input.dimensions();
    let factor = 160u32.div_ceil(iw.max(ih).max(1)).max(1);
    let (cw, ch) = (iw * factor, ih * factor);
    let columns = 1 + rows.iter().map(|r| r.cells.len()).max().unwrap_or(0) as u32;
    let text = (cw as f32 / 14.0).clamp(12.0, 18.0);
    let line = (text * 1.5).ceil() as u32;
    let width = 2 * MARGIN + columns * cw + (columns - 1) * GAP;
    let title_height = if title.is_some() { line + GAP } else { 0 };
    let body = rows.len() as u32 * (line + ch + GAP);
    let height = 2 * MARGIN + title_height + line + body.saturating_sub(GAP);
    let mut grid = RgbImage::from_pixel(width, height, Rgb(WHITE));

    let mut y = MARGIN as i32;
    if let Some(title) = title {
        let fitted = text::fit_text(title, text, width - 2 * MARGIN);
        text::draw_text(&mut grid, &fitted, MARGIN as i32, y, text, INK);
        y += (line + GAP) as i32;
    }
    let column_x = |c: u32| (MARGIN + c * (cw + GAP)) as i32;
    for (c, header) in std::iter::once("input")
        .chain(headers.iter().map(String::as_str))
        .enumerate()
    {
        text::draw_text_centered(&mut grid, header, column_x(c as u32), cw, y, text, INK);
    }
    y += line as i32;

    let scale = |img: &RgbImage| {
        if factor == 1 && img.dimensions() == (cw, ch) {
            img.clone()
        } else {
            image::imageops::resize(img, cw, ch, FilterType::Nearest)
        }
    };
    let input_scaled = scale(input);
    for row in rows {
        let fitted = text::fit_text(&row.caption, text, width - 2 * MARGIN);
        text::draw_text(&mut grid, &fitted, MARGIN as i32, y, text, INK);
        y += line as i32;
        image::imageops::replace(&mut grid, &input_scaled, column_x(0) as i64, y as i64);
        for (c, cell) in row.cells.iter().enumerate() {
            let x = column_x(c as u32 + 1) as i64;
            image::imageops::replace(&mut grid, &scale(cell), x, y as i64);
        }
        y += (ch + GAP) as i32;
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_keeps_positive_relevance_only() {
        // 2×1 image, channels-first: pixel 0 has only negative relevance.
        let r = [-1.0, 2.0, /* c1 */ -1.0, 1.0, /* c2 */ -1.0, 1.0];
        let img = heatmap_image(&r, 3, 2, 1, ColorMap::Seismic);
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255], "zero is white");
        assert_eq!(img.get_pixel(1, 0).0, ColorMap::Seismic.color(1.0));
    }

    #[test]
    fn overlay_shows_the_image_where_there_is_no_relevance() {
        let img = RgbImage::from_pixel(2, 1, Rgb([100, 100, 100]));
        let out = overlay(&img, &[0.0, 1.0], ColorMap::Bwr);
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100]);
        let p = out.get_pixel(1, 0).0;
        assert!(p[0] > 200 && p[2] < 50, "{p:?}");
    }

    #[test]
    fn grid_has_one_column_per_method_and_one_band_per_row() {
        let input = RgbImage::from_pixel(32, 32, Rgb([0, 128, 0]));
        let cell = RgbImage::from_pixel(32, 32, Rgb([255, 0, 0]));
        let headers = vec!["LRP".to_string(), "CLRP".into(), "SGLRP".into()];
        let row = GridRow {
            caption: "top-1: Bag (p = 0.830)".into(),
            cells: vec![cell.clone(), cell.clone(), cell],
        };
        let one = comparison_grid(Some("title"), &input, &headers, std::slice::from_ref(&row));
        let two = comparison_grid(Some("title"), &input, &headers, &[row.clone(), row]);
        assert_eq!(one.width(), two.width());
        assert!(two.height() > one.height() + 160);
        // 32-pixel maps are scaled ×5 to 160: four columns, three gaps, two margins.
        assert_eq!(one.width(), 2 * 10 + 4 * 160 + 3 * 6);
        assert!(one.pixels().any(|p| p.0 == [255, 0, 0]));
        assert!(one.pixels().any(|p| p.0 == [0, 128, 0]));
    }
}
