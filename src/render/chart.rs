//! Line charts of evaluation results, drawn like the paper's Figures 11 and 13: one line per
//! method, as PNG and SVG (plotters).

use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// What to draw.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
}

const SIZE: (u32, u32) = (720, 480);
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes `stem.png` and `stem.svg`, atomically.
pub fn write_chart(stem: &Path, chart: &Chart) -> Result<()> {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The bundled font parses (render::text tests it), so registration cannot fail.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            super::text::DEJAVU_SANS,
        );
    });
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(),
        chart,
    )
    .map_err(|message| Error::Image {
        path: png.clone(),
        message,
    })?;
    let image = RgbImage::from_raw(SIZE.0, SIZE.1, pixels).expect("buffer has the chart's size");
    crate::io::images::write_png(&png, &image)?;
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, SIZE).into_drawing_area(),
        chart,
    )
    .map_err(|message| Error::Image {
        path: svg.clone(),
        message,
    })?;
    crate::io::write_atomic(&svg, text.as_bytes())
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let points = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.08).max(1e-6);
    let mut ctx = ChartBuilder::on(&area)
        .caption(chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (k, s) in chart.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        ctx.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(err)?
        .label(s.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_as_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let series = [
            Series {
                label: "LRP".into(),
                points: vec![(1.0, -0.01), (3.0, -0.05), (5.0, -0.09)],
            },
            Series {
                label: "SGLRP".into(),
                points: vec![(1.0, -0.02), (3.0, -0.08), (5.0, -0.15)],
            },
        ];
        let chart = Chart {
            title: "masking",
            x_label: "patch size",
            y_label: "Δŷ",
            series: &series,
        };
        write_chart(&dir.path().join("masking"), &chart).unwrap();
        let png = image::open(dir.path().join("masking.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(png.dimensions(), SIZE);
        assert!(
            png.pixels().any(|p| p.0 != [255, 255, 255]),
            "something is drawn"
        );
        let svg = std::fs::read_to_string(dir.path().join("masking.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("SGLRP"));
    }
}
