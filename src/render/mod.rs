//! Pictures of relevance maps: colour maps, heatmap images (docs/method.md §Heatmaps), overlays
//! on the input image and the comparison grid laid out like the paper's figures (input | Guided
//! Grad-CAM | LRP | CLRP | SGLRP, one row per target).

pub mod chart;
pub mod colormap;
pub mod grid;
pub mod text;

pub use colormap::ColorMap;
pub use grid::{ColorBar, GridLayout, GridRow, Panel, comparison_grid, grid_layout};

use image::{Rgb, RgbImage};

use crate::heatmap::{Display, HeatmapKind};

/// How relevance maps are drawn (docs/method.md §Heatmaps): which heatmap, how it is scaled,
/// with which colours, and where the grid's colour bar goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RenderOptions {
    pub kind: HeatmapKind,
    /// Outlier clipping in percent, as Captum's `outlier_perc` (0: scale by the largest |value|).
    pub clip_percent: f32,
    pub cmap: ColorMap,
    pub colorbar: ColorBar,
}

impl RenderOptions {
    /// The heatmap of a `(C, H, W)` map, scaled for display.
    pub fn display(&self, relevance: &[f32], channels: usize) -> Display {
        Display::new(relevance, channels, self.kind, self.clip_percent)
    }

    /// The display of a heatmap the backend made (of this renderer's kind).
    pub fn display_heatmap(&self, map: &[f32]) -> Display {
        Display::of_heatmap(map.to_vec(), self.kind, self.clip_percent)
    }

    /// The heatmap image of a display, one pixel per map pixel.
    pub fn heatmap_image(&self, display: &Display, width: u32, height: u32) -> RgbImage {
        colorize(display, width, height, self.cmap)
    }

    /// A grid panel: the heatmap image, its scale, and the empty note if there is nothing to
    /// draw.
    pub fn panel(&self, display: &Display, width: u32, height: u32) -> Panel {
        Panel {
            image: self.heatmap_image(display, width, height),
            note: if display.is_empty() {
                String::new()
            } else {
                display.scale_note()
            },
            empty: display.is_empty().then(|| display.empty_note()),
        }
    }

    /// The normalisation, as written at the bottom of a grid.
    pub fn legend(&self) -> String {
        let (heatmap, range) = match self.kind {
            HeatmapKind::Positive => ("positive heatmap Σ_c max(R_c, 0)", "0 to 1"),
            HeatmapKind::Signed => ("signed heatmap Σ_c R_c", "−1 to 1, 0 at the centre"),
            HeatmapKind::Absolute => ("absolute heatmap Σ_c |R_c|", "0 to 1"),
        };
        let scale = if self.clip_percent > 0.0 {
            format!(
                "the scale under each panel clips the top {} % of its relevance (Captum's outlier_perc)",
                self.clip_percent
            )
        } else {
            "the scale under each panel is its largest |value|".to_string()
        };
        format!("{} · {heatmap} ÷ scale, {range}; {scale}", self.cmap)
    }
}

/// Colours a display `(H, W)`.
pub fn colorize(display: &Display, width: u32, height: u32, cmap: ColorMap) -> RgbImage {
    debug_assert_eq!(display.values.len(), (width * height) as usize);
    let mut img = RgbImage::new(width, height);
    for (pixel, &v) in img.pixels_mut().zip(&display.values) {
        *pixel = Rgb(cmap.color(v, display.kind));
    }
    img
}

/// The display's colours over a grey version of the image: each pixel's colour is blended in
/// with weight `0.85·√|v|`, so pixels without relevance show the image and the strongest show
/// mostly the map. `image` and the display `(H, W)` have the same size.
pub fn overlay(image: &RgbImage, display: &Display, cmap: ColorMap) -> RgbImage {
    let (w, h) = image.dimensions();
    debug_assert_eq!(display.values.len(), (w * h) as usize);
    let mut out = RgbImage::new(w, h);
    for ((dst, src), &v) in out.pixels_mut().zip(image.pixels()).zip(&display.values) {
        let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
        let [r, g, b] = src.0.map(f32::from);
        let grey = 0.299 * r + 0.587 * g + 0.114 * b;
        let color = cmap.color(v, display.kind);
        let alpha = 0.85 * v.abs().sqrt();
        *dst = Rgb(color.map(|c| (grey * (1.0 - alpha) + c as f32 * alpha).round() as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_heatmaps_drop_negative_relevance() {
        // 2×1 image, channels-first: pixel 0 has only negative relevance.
        let r = [-1.0, 2.0, /* c1 */ -1.0, 1.0, /* c2 */ -1.0, 1.0];
        let options = RenderOptions::default();
        let img = options.heatmap_image(&options.display(&r, 3), 2, 1);
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255], "zero is white");
        assert_eq!(
            img.get_pixel(1, 0).0,
            ColorMap::Seismic.color(1.0, HeatmapKind::Positive)
        );
        let signed = RenderOptions {
            kind: HeatmapKind::Signed,
            ..options
        };
        let img = signed.heatmap_image(&signed.display(&r, 3), 2, 1);
        // −3 of ±4: x = 0.125, halfway between (0, 0, 0.3) and (0, 0, 1).
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 166]);
    }

    #[test]
    fn overlay_shows_the_image_where_there_is_no_relevance() {
        let img = RgbImage::from_pixel(2, 1, Rgb([100, 100, 100]));
        let display = Display::new(&[0.0, 1.0], 1, HeatmapKind::Positive, 0.0);
        let out = overlay(&img, &display, ColorMap::Bwr);
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100]);
        let p = out.get_pixel(1, 0).0;
        assert!(p[0] > 200 && p[2] < 50, "{p:?}");
    }
}
