//! Pictures: the colour maps against the tables of matplotlib and Zennit
//! (tests/fixtures/make_colormap_tables.py), and grids decoded from PNG with their frames, colour
//! bars, centre colours and empty-panel marks where the layout says they are.

use image::{Rgb, RgbImage};
use sglrp::heatmap::HeatmapKind;
use sglrp::io::images::write_png;
use sglrp::render::grid::{BAR, FRAME};
use sglrp::render::{ColorBar, ColorMap, GridRow, RenderOptions, comparison_grid, grid_layout};

/// The reference's colours (floats in [0, 1]) at x = i/255.
fn reference_table(name: &str) -> Vec<[f64; 3]> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/colormaps.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["tables"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no table {name}"))
        .iter()
        .map(|c| std::array::from_fn(|k| c[k].as_f64().unwrap()))
        .collect()
}

#[test]
fn every_colour_map_matches_its_reference() {
    for cmap in ColorMap::ALL {
        let table = reference_table(cmap.name());
        assert_eq!(table.len(), 256, "{cmap}");
        let mut worst = 0u8;
        for (i, reference) in table.iter().enumerate() {
            let ours = cmap.at(i as f32 / 255.0);
            for k in 0..3 {
                let theirs = (reference[k] * 255.0).round() as u8;
                worst = worst.max(ours[k].abs_diff(theirs));
            }
        }
        // matplotlib's maps are the same functions (8-bit rounding: 1); Zennit's centre is at
        // index 128 of 255 where ours is at 0.5: half an index, up to 4 levels on coldnhot's
        // 64-index blue segment.
        let bound = match cmap {
            ColorMap::ColdNHot | ColorMap::ZennitSeismic => 4,
            _ => 1,
        };
        assert!(worst <= bound, "{cmap}: off by {worst}");
    }
}

/// A seeded map `(3, side, side)` that is 0 in the left quarter.
fn map(side: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    (0..3 * side * side)
        .map(|i| {
            let x = i % side;
            if x < side / 4 { 0.0 } else { next() }
        })
        .collect()
}

fn pixel(img: &RgbImage, x: u32, y: u32) -> [u8; 3] {
    img.get_pixel(x, y).0
}

/// Whether a region holds a pixel far from `background` (text ink).
fn has_ink(img: &RgbImage, [x, y, w, h]: [u32; 4], background: [u8; 3]) -> bool {
    (y..y + h).any(|yy| {
        (x..x + w).any(|xx| {
            let p = pixel(img, xx, yy);
            p.iter().zip(background).any(|(a, b)| a.abs_diff(b) > 60)
        })
    })
}

fn grid_png(options: &RenderOptions, side: u32, dir: &std::path::Path) -> (RgbImage, Vec<bool>) {
    let input = RgbImage::from_pixel(side, side, Rgb([0, 128, 0]));
    let negative: Vec<f32> = map(side as usize, 3).iter().map(|v| -v.abs()).collect();
    let maps = [map(side as usize, 1), negative, map(side as usize, 2)];
    let mut empty = Vec::new();
    let cells = maps
        .iter()
        .map(|m| {
            let display = options.display(m, 3);
            empty.push(display.is_empty());
            options.panel(&display, side, side)
        })
        .collect();
    let rows = [
        GridRow {
            caption: "target top1: Bag, p = 0.831".into(),
            cells,
        },
        GridRow {
            caption: "target top2: Sandal, p = 0.101".into(),
            cells: maps
                .iter()
                .map(|m| options.panel(&options.display(m, 3), side, side))
                .collect(),
        },
    ];
    let headers = ["LRP".to_string(), "CLRP".into(), "SGLRP".into()];
    let grid = comparison_grid(Some("a title"), &input, &headers, &rows, options);
    let path = dir.join(format!("{}_{}.png", options.kind, options.colorbar));
    write_png(&path, &grid).unwrap();
    (image::open(&path).unwrap().to_rgb8(), empty)
}

#[test]
fn grids_have_frames_colour_bars_centre_colours_and_empty_marks() {
    let dir = tempfile::tempdir().unwrap();
    let side = 32;
    for (kind, cmap, colorbar) in [
        (HeatmapKind::Positive, ColorMap::Seismic, ColorBar::Grid),
        (HeatmapKind::Signed, ColorMap::Seismic, ColorBar::Row),
        (HeatmapKind::Signed, ColorMap::ColdNHot, ColorBar::Grid),
        (HeatmapKind::Absolute, ColorMap::Hot, ColorBar::Row),
        (HeatmapKind::Positive, ColorMap::Gray, ColorBar::None),
    ] {
        let options = RenderOptions {
            kind,
            clip_percent: 1.0,
            cmap,
            colorbar,
        };
        let what = format!("{kind} {cmap} {colorbar}");
        let (grid, empty) = grid_png(&options, side, dir.path());
        let layout = grid_layout((side, side), 3, 2, true, colorbar);
        assert_eq!(grid.dimensions(), (layout.width, layout.height), "{what}");
        let zero = cmap.zero(kind);
        // Only a positive heatmap of the all-negative map is empty.
        assert_eq!(
            empty,
            [false, kind == HeatmapKind::Positive, false],
            "{what}"
        );
        for (_, rects) in &layout.rows {
            assert_eq!(rects.len(), 4);
            for (c, &[x, y, w, h]) in rects.iter().enumerate() {
                // Thin frames: one pixel outside each picture, the picture inside.
                for (fx, fy) in [
                    (x - 1, y + h / 2),
                    (x + w, y + h / 2),
                    (x + w / 2, y - 1),
                    (x + w / 2, y + h),
                ] {
                    assert_eq!(pixel(&grid, fx, fy), FRAME, "{what}: frame at {fx},{fy}");
                }
                assert_eq!(
                    pixel(&grid, x - 2, y + h / 2),
                    [255; 3],
                    "{what}: frames are thin"
                );
                if c == 0 {
                    assert_eq!(pixel(&grid, x + 3, y + 3), [0, 128, 0], "{what}: input");
                    continue;
                }
                // The map's left quarter holds no relevance: the centre colour, exactly.
                assert_eq!(
                    pixel(&grid, x + w / 16, y + h / 3),
                    zero,
                    "{what}: zero colour"
                );
                assert_eq!(pixel(&grid, x + 1, y + h - 2), zero, "{what}");
                // The scale under each panel that has one.
                let below = [x, y + h + 2, w, 12];
                assert_eq!(
                    has_ink(&grid, below, [255; 3]),
                    !empty[c - 1],
                    "{what}: scale under panel {c}"
                );
                // The empty panel says so, in its middle.
                let middle = [x + 2, y + h / 2 - 6, w - 4, 12];
                if empty[c - 1] {
                    assert!(has_ink(&grid, middle, zero), "{what}: empty mark");
                }
            }
        }
        // Colour bars: framed, the low end, the centre and the high end where they must be.
        let expected_bars = match colorbar {
            ColorBar::Grid => 1,
            ColorBar::Row => 2,
            ColorBar::None => 0,
        };
        assert_eq!(layout.bars.len(), expected_bars, "{what}");
        let (lo, hi) = sglrp::render::grid::value_range(kind);
        for &[x, y, w, h] in &layout.bars {
            assert_eq!(pixel(&grid, x - 1, y + h / 2), FRAME, "{what}: bar frame");
            assert_eq!(pixel(&grid, x + w, y + h / 2), FRAME, "{what}: bar frame");
            let (low, mid, high) = if h > w {
                assert_eq!(w, BAR);
                (
                    (x + w / 2, y + h - 1),
                    (x + w / 2, y + (h - 1) / 2),
                    (x + w / 2, y),
                )
            } else {
                assert_eq!(h, BAR);
                (
                    (x, y + h / 2),
                    (x + (w - 1) / 2, y + h / 2),
                    (x + w - 1, y + h / 2),
                )
            };
            let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= 3);
            assert_eq!(
                pixel(&grid, low.0, low.1),
                cmap.color(lo, kind),
                "{what}: low end"
            );
            assert_eq!(
                pixel(&grid, high.0, high.1),
                cmap.color(hi, kind),
                "{what}: high end"
            );
            let m = pixel(&grid, mid.0, mid.1);
            assert!(
                near(m, cmap.color((lo + hi) / 2.0, kind)),
                "{what}: middle {m:?}"
            );
            if kind == HeatmapKind::Signed {
                assert!(near(m, zero), "{what}: 0 at the centre of the bar, {m:?}");
            }
        }
        // The normalisation is written at the bottom.
        let legend = [10, layout.legend_y, layout.width - 20, 14];
        assert!(has_ink(&grid, legend, [255; 3]), "{what}: normalisation");
    }
}

#[test]
fn legend_names_the_heatmap_and_the_clipping() {
    let options = RenderOptions {
        kind: HeatmapKind::Signed,
        clip_percent: 2.0,
        ..RenderOptions::default()
    };
    let legend = options.legend();
    assert!(
        legend.contains("signed") && legend.contains("2 %"),
        "{legend}"
    );
    assert!(
        RenderOptions::default()
            .legend()
            .contains("largest |value|")
    );
}
