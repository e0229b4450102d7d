//! The comparison grid, laid out like the paper's figures: input | one column per method, one row
//! per target. Every panel has a thin frame and its scale written under it; a colour bar per row
//! or per grid says what the colours mean; a panel with nothing to draw says so.

use image::{Rgb, RgbImage, imageops::FilterType};
use imageproc::rect::Rect;

use super::text;
use super::{ColorMap, RenderOptions};
use crate::heatmap::HeatmapKind;

/// Where the colour bar goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColorBar {
    /// One horizontal bar under the grid, below the method columns.
    #[default]
    Grid,
    /// One vertical bar at the right of each row.
    Row,
    /// None (the normalisation is still written at the bottom).
    None,
}

impl ColorBar {
    pub const ALL: [ColorBar; 3] = [ColorBar::Grid, ColorBar::Row, ColorBar::None];

    pub fn name(self) -> &'static str {
        match self {
            ColorBar::Grid => "grid",
            ColorBar::Row => "row",
            ColorBar::None => "none",
        }
    }
}

impl std::fmt::Display for ColorBar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ColorBar {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ColorBar::ALL
            .into_iter()
            .find(|b| b.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown colour bar `{s}` (expected grid, row or none)"))
    }
}

/// One picture of a grid row: the heatmap, the scale written under it and, when there was
/// nothing to draw, the note drawn on it.
#[derive(Clone, Debug)]
pub struct Panel {
    pub image: RgbImage,
    pub note: String,
    pub empty: Option<&'static str>,
}

/// One row of a comparison grid: its caption and one panel per method column.
#[derive(Clone, Debug)]
pub struct GridRow {
    pub caption: String,
    pub cells: Vec<Panel>,
}

/// Frame colour of panels and colour bars.
pub const FRAME: [u8; 3] = [90, 90, 90];
const WHITE: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [20, 20, 20];
const GAP: u32 = 6;
const MARGIN: u32 = 10;
/// Thickness of a colour bar.
pub const BAR: u32 = 14;

/// Where everything of a grid is, in pixels. Rectangles are `[x, y, width, height]`, frames lie
/// one pixel outside them.
#[derive(Clone, Debug, PartialEq)]
pub struct GridLayout {
    pub width: u32,
    pub height: u32,
    /// Font size of captions and headers.
    pub text: f32,
    pub title_y: u32,
    pub header_y: u32,
    /// Per row: the caption's y and the rectangles of the input and of each method's panel.
    pub rows: Vec<(u32, Vec<[u32; 4]>)>,
    /// Per row (bar per row) or one (bar per grid): the colour bars, drawn from the low end of
    /// the heatmap's range (left or bottom) to the high end.
    pub bars: Vec<[u32; 4]>,
    /// The y of the normalisation line at the bottom.
    pub legend_y: u32,
}

/// The layout of a grid of `rows` rows of `methods` panels, pictures of `cell_source` pixels
/// scaled by a whole factor (nearest neighbour) to at least 160.
pub fn grid_layout(
    cell_source: (u32, u32),
    methods: usize,
    rows: usize,
    title: bool,
    bar: ColorBar,
) -> GridLayout {
    let (iw, ih) = cell_source;
    let factor = 160u32.div_ceil(iw.max(ih).max(1)).max(1);
    let (cw, ch) = (iw * factor, ih * factor);
    let columns = 1 + methods as u32;
    let text = (cw as f32 / 14.0).clamp(12.0, 18.0);
    let line = (text * 1.5).ceil() as u32;
    let note_line = (note_size(text) * 1.6).ceil() as u32;
    let panels_width = columns * cw + (columns - 1) * GAP;
    let bar_labels = text::text_size("−0.5", note_size(text)).0 + 4;
    let row_bar = if bar == ColorBar::Row {
        GAP + BAR + 4 + bar_labels
    } else {
        0
    };
    let width = 2 * MARGIN + panels_width + row_bar;
    let title_y = MARGIN;
    let header_y = title_y + if title { line + GAP } else { 0 };
    let mut y = header_y + line;
    let column_x = |c: u32| MARGIN + c * (cw + GAP);
    let mut row_rects = Vec::with_capacity(rows);
    let mut bars = Vec::new();
    for _ in 0..rows {
        let caption_y = y;
        y += line;
        let rects = (0..columns).map(|c| [column_x(c), y, cw, ch]).collect();
        if bar == ColorBar::Row {
            bars.push([MARGIN + panels_width + GAP, y, BAR, ch]);
        }
        row_rects.push((caption_y, rects));
        y += ch + note_line + GAP;
    }
    if bar == ColorBar::Grid && methods > 0 {
        let x = column_x(1);
        bars.push([x, y, column_x(columns) - GAP - x, BAR]);
        y += BAR + 2 + note_line + GAP;
    }
    let legend_y = y;
    GridLayout {
        width,
        height: legend_y + line + MARGIN,
        text,
        title_y,
        header_y,
        rows: row_rects,
        bars,
        legend_y,
    }
}

fn note_size(text: f32) -> f32 {
    (text * 0.8).max(11.0)
}

/// The comparison grid: an optional title, column headers (`input` and one per method), per row
/// a caption above the input image and the row's panels (framed, each with its scale under it),
/// the colour bar(s) and the normalisation at the bottom.
pub fn comparison_grid(
    title: Option<&str>,
    input: &RgbImage,
    headers: &[String],
    rows: &[GridRow],
    options: &RenderOptions,
) -> RgbImage {
    let methods = rows.iter().map(|r| r.cells.len()).max().unwrap_or(0);
    let layout = grid_layout(
        input.dimensions(),
        methods,
        rows.len(),
        title.is_some(),
        options.colorbar,
    );
    let text = layout.text;
    let small = note_size(text);
    let inner = layout.width - 2 * MARGIN;
    let mut grid = RgbImage::from_pixel(layout.width, layout.height, Rgb(WHITE));
    if let Some(title) = title {
        let fitted = text::fit_text(title, text, inner);
        text::draw_text(
            &mut grid,
            &fitted,
            MARGIN as i32,
            layout.title_y as i32,
            text,
            INK,
        );
    }
    let cell = layout.rows.first().map(|(_, r)| r[0]);
    if let Some([_, _, cw, ch]) = cell {
        for (c, header) in std::iter::once("input")
            .chain(headers.iter().map(String::as_str))
            .enumerate()
        {
            let x = (MARGIN + c as u32 * (cw + GAP)) as i32;
            text::draw_text_centered(&mut grid, header, x, cw, layout.header_y as i32, text, INK);
        }
        let scale = |img: &RgbImage| {
            if img.dimensions() == (cw, ch) {
                img.clone()
            } else {
                image::imageops::resize(img, cw, ch, FilterType::Nearest)
            }
        };
        let input_scaled = scale(input);
        for (row, (caption_y, rects)) in rows.iter().zip(&layout.rows) {
            let fitted = text::fit_text(&row.caption, text, inner);
            text::draw_text(
                &mut grid,
                &fitted,
                MARGIN as i32,
                *caption_y as i32,
                text,
                INK,
            );
            place(&mut grid, &input_scaled, rects[0]);
            for (panel, &rect) in row.cells.iter().zip(&rects[1..]) {
                place(&mut grid, &scale(&panel.image), rect);
                let [x, y, w, h] = rect;
                let note_y = (y + h + 2) as i32;
                text::draw_text_centered(&mut grid, &panel.note, x as i32, w, note_y, small, INK);
                if let Some(empty) = panel.empty {
                    let zero = options.cmap.zero(options.kind);
                    let luma =
                        0.299 * zero[0] as f32 + 0.587 * zero[1] as f32 + 0.114 * zero[2] as f32;
                    let ink = if luma < 128.0 { WHITE } else { INK };
                    let (_, th) = text::text_size(empty, small);
                    let ty = (y + h / 2) as i32 - th as i32 / 2;
                    text::draw_text_centered(&mut grid, empty, x as i32, w, ty, small, ink);
                }
            }
        }
    }
    for &bar in &layout.bars {
        draw_bar(&mut grid, bar, options.cmap, options.kind, small);
    }
    let legend = text::fit_text(&options.legend(), small, inner);
    text::draw_text(
        &mut grid,
        &legend,
        MARGIN as i32,
        layout.legend_y as i32,
        small,
        INK,
    );
    grid
}

/// Copies `picture` into `rect` and frames it.
fn place(grid: &mut RgbImage, picture: &RgbImage, [x, y, w, h]: [u32; 4]) {
    image::imageops::replace(grid, picture, x as i64, y as i64);
    frame(grid, [x, y, w, h]);
}

fn frame(grid: &mut RgbImage, [x, y, w, h]: [u32; 4]) {
    let outer = Rect::at(x as i32 - 1, y as i32 - 1).of_size(w + 2, h + 2);
    imageproc::drawing::draw_hollow_rect_mut(grid, outer, Rgb(FRAME));
}

/// The heatmap's range of display values: [−1, 1] for signed heatmaps, [0, 1] otherwise.
pub fn value_range(kind: HeatmapKind) -> (f32, f32) {
    match kind {
        HeatmapKind::Signed => (-1.0, 1.0),
        HeatmapKind::Positive | HeatmapKind::Absolute => (0.0, 1.0),
    }
}

/// A colour bar from the low end of the range (left, or bottom when the bar is upright) to the
/// high end, framed, with its ends and middle labelled in units of each panel's scale.
fn draw_bar(
    grid: &mut RgbImage,
    [x, y, w, h]: [u32; 4],
    cmap: ColorMap,
    kind: HeatmapKind,
    size: f32,
) {
    let (lo, hi) = value_range(kind);
    let upright = h > w;
    let span = if upright { h } else { w };
    for i in 0..span {
        let t = if span > 1 {
            i as f32 / (span - 1) as f32
        } else {
            0.5
        };
        let color = Rgb(cmap.color(lo + (hi - lo) * t, kind));
        for j in 0..if upright { w } else { h } {
            let (px, py) = if upright {
                (x + j, y + h - 1 - i)
            } else {
                (x + i, y + j)
            };
            grid.put_pixel(px, py, color);
        }
    }
    frame(grid, [x, y, w, h]);
    let labels = match kind {
        HeatmapKind::Signed => ["−1", "0", "+1"],
        HeatmapKind::Positive | HeatmapKind::Absolute => ["0", "0.5", "1"],
    };
    for (k, label) in labels.iter().enumerate() {
        let (tw, th) = text::text_size(label, size);
        let along = (span as f32 - 1.0) * k as f32 / 2.0;
        let (tx, ty) = if upright {
            (x + w + 4, (y + h - 1) as f32 - along - th as f32 / 2.0)
        } else {
            (
                (x as f32 + along - tw as f32 / 2.0).max(0.0) as u32,
                (y + h + 2) as f32,
            )
        };
        text::draw_text(grid, label, tx as i32, ty as i32, size, INK);
    }
}
