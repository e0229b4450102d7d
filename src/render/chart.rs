//! Line charts of evaluation results, drawn like the paper's Figures 11 and 13: one line per
//! method, as PNG and SVG (plotters). Ticks sit at the measured x values, the legend beside the
//! plot, and error bars of ±1 standard error where the caller gives them.

use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor;

use crate::error::{Error, Result};

/// One line of a chart: the mean at each x and, optionally, its standard error (one per point).
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    /// (x, mean).
    pub points: Vec<(f64, f64)>,
    /// The standard error of each mean, drawn as ±1 SE bars; `None` draws none.
    pub standard_errors: Option<Vec<f64>>,
}

impl Series {
    /// Each point's error bar, (low, high), if the series has standard errors.
    fn bars(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        let errors = self.standard_errors.as_deref().unwrap_or(&[]);
        self.points
            .iter()
            .zip(errors)
            .filter(|(_, se)| se.is_finite())
            .map(|(&(x, y), &se)| (x, y - se.abs(), y + se.abs()))
    }
}

/// What to draw.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
}

const SIZE: (u32, u32) = (900, 480);
/// Width of the legend beside the plot.
const LEGEND: u32 = 190;
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

/// Writes `stem.png` and `stem.svg`, atomically. A series whose standard errors do not match its
/// points is refused.
pub fn write_chart(stem: &Path, chart: &Chart) -> Result<()> {
    for s in chart.series {
        if let Some(se) = &s.standard_errors
            && se.len() != s.points.len()
        {
            return Err(Error::Request(format!(
                "chart {}: series `{}` has {} points and {} standard errors",
                stem.display(),
                s.label,
                s.points.len(),
                se.len()
            )));
        }
    }
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

/// The measured x values, sorted and without repeats: the ticks.
fn ticks(series: &[Series]) -> Vec<f64> {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

/// A tick label: the value with up to three decimals, trailing zeros dropped (`1`, `2.5`).
fn tick_label(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let (plot, legend) = area.split_horizontally(SIZE.0 - LEGEND);
    let xs = ticks(chart.series);
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for s in chart.series {
        for &(_, y) in &s.points {
            (y0, y1) = (y0.min(y), y1.max(y));
        }
        for (_, lo, hi) in s.bars() {
            (y0, y1) = (y0.min(lo), y1.max(hi));
        }
    }
    let (x0, x1) = match (xs.first(), xs.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => (0.0, 1.0),
    };
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    let x_pad = ((x1 - x0) * 0.05).max(0.5);
    let y_pad = ((y1 - y0) * 0.08).max(1e-6);
    let mut ctx = ChartBuilder::on(&plot)
        .caption(chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 - x_pad)..(x1 + x_pad), (y0 - y_pad)..(y1 + y_pad))
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_labels(0)
        .disable_x_mesh()
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    // Ticks at the measured x values (plotters would place round numbers).
    let bottom = y0 - y_pad;
    let grid_line = RGBColor(235, 235, 235);
    ctx.draw_series(
        xs.iter()
            .map(|&x| PathElement::new(vec![(x, bottom), (x, y1 + y_pad)], grid_line)),
    )
    .map_err(err)?;
    let font = ("sans-serif", 14)
        .into_font()
        .color(&BLACK)
        .pos(text_anchor::Pos::new(
            text_anchor::HPos::Center,
            text_anchor::VPos::Top,
        ));
    for &x in &xs {
        let (px, py) = ctx.backend_coord(&(x, bottom));
        area.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK))
            .map_err(err)?;
        area.draw(&Text::new(tick_label(x), (px, py + 7), font.clone()))
            .map_err(err)?;
    }
    for (k, s) in chart.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        ctx.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(err)?;
        ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
        ctx.draw_series(
            s.bars()
                .map(|(x, lo, hi)| PathElement::new(vec![(x, lo), (x, hi)], color)),
        )
        .map_err(err)?;
        let caps = s.bars().flat_map(|(x, lo, hi)| [(x, lo), (x, hi)]);
        ctx.draw_series(
            caps.map(|p| EmptyElement::at(p) + PathElement::new(vec![(-4, 0), (4, 0)], color)),
        )
        .map_err(err)?;
    }
    draw_legend(&legend, chart.series).map_err(err)?;
    area.present().map_err(err)
}

/// The legend, beside the plot so that it never covers a curve: one line sample and label per
/// series, and a note on the error bars if there are any.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 14).into_font().color(&BLACK);
    let mut y = 60;
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        area.draw(&PathElement::new(
            vec![(4, y + 7), (26, y + 7)],
            color.stroke_width(2),
        ))?;
        area.draw(&Circle::new((15, y + 7), 3, color.filled()))?;
        area.draw(&Text::new(s.label.clone(), (32, y), font.clone()))?;
        y += 22;
    }
    if series.iter().any(|s| s.bars().next().is_some()) {
        area.draw(&Text::new("bars: ±1 standard error", (4, y + 8), font))?;
    }
    Ok(())
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
                standard_errors: None,
            },
            Series {
                label: "SGLRP".into(),
                points: vec![(1.0, -0.02), (3.0, -0.08), (5.0, -0.15)],
                standard_errors: Some(vec![0.005, 0.01, 0.02]),
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
        assert!(svg.contains("standard error"), "the bars are explained");
        let mut bad = series.to_vec();
        bad[0].standard_errors = Some(vec![0.1]);
        let chart = Chart {
            series: &bad,
            ..chart
        };
        let err = write_chart(&dir.path().join("bad"), &chart).unwrap_err();
        assert!(
            err.to_string().contains("3 points and 1 standard errors"),
            "{err}"
        );
    }

    #[test]
    fn ticks_are_the_measured_values() {
        let series = [Series {
            label: "a".into(),
            points: vec![(9.0, 0.0), (1.0, 0.0), (5.0, 0.0), (1.0, 1.0)],
            standard_errors: None,
        }];
        assert_eq!(ticks(&series), vec![1.0, 5.0, 9.0]);
        assert_eq!(tick_label(1.0), "1");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(10.000000001), "10");
    }
}
