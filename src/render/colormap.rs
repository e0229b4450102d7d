//! Colour maps for heatmaps, each meaning what its name means in the ecosystem it comes from
//! (docs/method.md §Heatmaps): matplotlib's `seismic`, `bwr`, `gray`, `binary` and `hot`, and
//! Zennit's signed `coldnhot` and `seismic` (here `zennit_seismic`). Tables are sampled once from
//! `colorgrad` linear gradients whose stops are the reference definitions;
//! `tests/fixtures/make_colormap_tables.py` samples matplotlib 3.9.2 and zennit 0.5.1 and
//! `tests/render.rs` checks every map against them.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use colorgrad::{Color, Gradient, GradientBuilder, LinearGradient};

use crate::heatmap::HeatmapKind;

/// A colour map over the reference's domain [0, 1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColorMap {
    /// matplotlib's `seismic`: dark blue, blue, white (centre), red, dark red. The paper's figures.
    #[default]
    Seismic,
    /// matplotlib's `bwr` (Zennit's is the same): blue, white (centre), red.
    Bwr,
    /// Zennit's `coldnhot`: cyan, blue, black (centre), red, yellow, white.
    ColdNHot,
    /// Zennit's `seismic`: blue 0xd0, grey 0xd0d0d0 (centre), red 0xd0.
    ZennitSeismic,
    /// matplotlib's `gray`: black to white.
    Gray,
    /// matplotlib's `binary`: white to black.
    Binary,
    /// matplotlib's `hot`: black, red, yellow, white.
    Hot,
}

impl ColorMap {
    pub const ALL: [ColorMap; 7] = [
        ColorMap::Seismic,
        ColorMap::Bwr,
        ColorMap::ColdNHot,
        ColorMap::ZennitSeismic,
        ColorMap::Gray,
        ColorMap::Binary,
        ColorMap::Hot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ColorMap::Seismic => "seismic",
            ColorMap::Bwr => "bwr",
            ColorMap::ColdNHot => "coldnhot",
            ColorMap::ZennitSeismic => "zennit_seismic",
            ColorMap::Gray => "gray",
            ColorMap::Binary => "binary",
            ColorMap::Hot => "hot",
        }
    }

    /// Whether the map has a centre colour for 0 (blue–white–red and the like). A diverging map
    /// always puts 0 at its centre, so a positive heatmap uses its upper half, as the paper's
    /// figures do; a sequential map spreads a positive heatmap over all of it.
    pub fn diverging(self) -> bool {
        matches!(
            self,
            ColorMap::Seismic | ColorMap::Bwr | ColorMap::ColdNHot | ColorMap::ZennitSeismic
        )
    }

    /// The gradient's stops over [0, 1]: (position, (r, g, b)) with channels in [0, 1].
    fn stops(self) -> &'static [(f32, [f32; 3])] {
        const D0: f32 = 208.0 / 255.0;
        match self {
            // matplotlib `_seismic_data`: five colours evenly spaced.
            ColorMap::Seismic => &[
                (0.0, [0.0, 0.0, 0.3]),
                (0.25, [0.0, 0.0, 1.0]),
                (0.5, [1.0, 1.0, 1.0]),
                (0.75, [1.0, 0.0, 0.0]),
                (1.0, [0.5, 0.0, 0.0]),
            ],
            // matplotlib `_bwr_data`; Zennit's `00f,80:fff,f00`.
            ColorMap::Bwr => &[
                (0.0, [0.0, 0.0, 1.0]),
                (0.5, [1.0, 1.0, 1.0]),
                (1.0, [1.0, 0.0, 0.0]),
            ],
            // Zennit `0ff,00f,80:000,f00,ff0,fff`: unindexed colours evenly spaced between the
            // indexed ones. Zennit's centre is index 0x80 = 128/255; here it is exactly 0.5, so
            // that 0 is drawn black.
            ColorMap::ColdNHot => &[
                (0.0, [0.0, 1.0, 1.0]),
                (0.25, [0.0, 0.0, 1.0]),
                (0.5, [0.0, 0.0, 0.0]),
                (2.0 / 3.0, [1.0, 0.0, 0.0]),
                (5.0 / 6.0, [1.0, 1.0, 0.0]),
                (1.0, [1.0, 1.0, 1.0]),
            ],
            // Zennit `0000d0,80:d0d0d0,d00000`, centre at 0.5 as above.
            ColorMap::ZennitSeismic => &[
                (0.0, [0.0, 0.0, D0]),
                (0.5, [D0, D0, D0]),
                (1.0, [D0, 0.0, 0.0]),
            ],
            // matplotlib `_gray_data` and `_binary_data`.
            ColorMap::Gray => &[(0.0, [0.0, 0.0, 0.0]), (1.0, [1.0, 1.0, 1.0])],
            ColorMap::Binary => &[(0.0, [1.0, 1.0, 1.0]), (1.0, [0.0, 0.0, 0.0])],
            // matplotlib `_hot_data`: each channel's breakpoints, merged (every channel is
            // linear between them).
            ColorMap::Hot => &[
                (0.0, [0.0416, 0.0, 0.0]),
                (0.365079, [1.0, 0.0, 0.0]),
                (0.746032, [1.0, 1.0, 0.0]),
                (1.0, [1.0, 1.0, 1.0]),
            ],
        }
    }

    /// The gradient over [0, 1], interpolated in plain (gamma-encoded) RGB as matplotlib and
    /// Zennit do.
    pub fn gradient(self) -> LinearGradient {
        let stops = self.stops();
        let colors: Vec<Color> = stops
            .iter()
            .map(|(_, [r, g, b])| Color::new(*r, *g, *b, 1.0))
            .collect();
        let positions: Vec<f32> = stops.iter().map(|(p, _)| *p).collect();
        GradientBuilder::new()
            .colors(&colors)
            .domain(&positions)
            .mode(colorgrad::BlendMode::Rgb)
            .build::<LinearGradient>()
            .expect("the stops are valid and increasing")
    }

    /// The table: entry `i` is the gradient at `i/(N − 1)`, `N` = [`TABLE_SIZE`] (odd, so that
    /// the centre 0.5 has an entry of its own: seismic draws 0 exactly white, where
    /// matplotlib's 256-entry tables show (255, 253, 253)).
    pub fn table(self) -> &'static [[u8; 3]; TABLE_SIZE] {
        static TABLES: [OnceLock<[[u8; 3]; TABLE_SIZE]>; ColorMap::ALL.len()] =
            [const { OnceLock::new() }; ColorMap::ALL.len()];
        let index = ColorMap::ALL.iter().position(|&m| m == self).unwrap_or(0);
        TABLES[index].get_or_init(|| {
            let gradient = self.gradient();
            std::array::from_fn(|i| {
                let [r, g, b, _] = gradient.at(i as f32 / (TABLE_SIZE - 1) as f32).to_rgba8();
                [r, g, b]
            })
        })
    }

    /// The colour at `x` in [0, 1] of the map's domain (clamped; NaN is the centre).
    pub fn at(self, x: f32) -> [u8; 3] {
        let x = if x.is_nan() { 0.5 } else { x.clamp(0.0, 1.0) };
        let index = (x * (TABLE_SIZE - 1) as f32).round() as usize;
        self.table()[index.min(TABLE_SIZE - 1)]
    }

    /// Where a display value `v` of a `kind` heatmap falls in the map's domain: `v` is in
    /// [−1, 1] for signed heatmaps and in [0, 1] otherwise (see `heatmap::Display`). Signed
    /// heatmaps and every heatmap on a diverging map put 0 at the centre; positive and absolute
    /// heatmaps on a sequential map start at its low end. NaN is drawn as 0.
    pub fn position(self, v: f32, kind: HeatmapKind) -> f32 {
        let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
        if self.diverging() || kind == HeatmapKind::Signed {
            0.5 + 0.5 * v
        } else {
            v.max(0.0)
        }
    }

    /// The colour of display value `v` of a `kind` heatmap.
    pub fn color(self, v: f32, kind: HeatmapKind) -> [u8; 3] {
        self.at(self.position(v, kind))
    }

    /// The colour of 0 (no relevance) for a `kind` heatmap.
    pub fn zero(self, kind: HeatmapKind) -> [u8; 3] {
        self.color(0.0, kind)
    }
}

/// Entries per colour table.
pub const TABLE_SIZE: usize = 1025;

impl fmt::Display for ColorMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ColorMap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase().replace('-', "_");
        let lower = if lower == "grey" {
            "gray".into()
        } else {
            lower
        };
        ColorMap::ALL
            .into_iter()
            .find(|m| m.name() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = ColorMap::ALL.iter().map(|m| m.name()).collect();
                format!("unknown colour map `{s}` (expected {})", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_the_centre_colour() {
        use HeatmapKind::*;
        for kind in HeatmapKind::ALL {
            assert_eq!(ColorMap::Seismic.zero(kind), [255, 255, 255], "{kind}");
            assert_eq!(ColorMap::Bwr.zero(kind), [255, 255, 255], "{kind}");
            assert_eq!(ColorMap::ColdNHot.zero(kind), [0, 0, 0], "{kind}");
            assert_eq!(ColorMap::ZennitSeismic.zero(kind), [208, 208, 208]);
        }
        // Sequential maps: 0 is the low end, or the middle for signed heatmaps.
        assert_eq!(ColorMap::Gray.zero(Positive), [0, 0, 0]);
        assert_eq!(ColorMap::Binary.zero(Absolute), [255, 255, 255]);
        assert_eq!(ColorMap::Gray.zero(Signed), [128, 128, 128]);
        assert_eq!(ColorMap::Gray.color(-1.0, Signed), [0, 0, 0]);
        assert_eq!(ColorMap::Gray.color(-1.0, Positive), [0, 0, 0]);
        assert_eq!(ColorMap::Hot.color(1.0, Positive), [255, 255, 255]);
    }

    #[test]
    fn ends_match_the_reference_maps() {
        use HeatmapKind::Signed;
        // matplotlib: seismic(0) = (0, 0, 0.3), seismic(1) = (0.5, 0, 0).
        assert_eq!(ColorMap::Seismic.color(-1.0, Signed), [0, 0, 77]);
        assert_eq!(ColorMap::Seismic.color(1.0, Signed), [128, 0, 0]);
        assert_eq!(ColorMap::Seismic.color(0.5, Signed), [255, 0, 0]);
        assert_eq!(ColorMap::Seismic.color(-0.5, Signed), [0, 0, 255]);
        assert_eq!(ColorMap::ColdNHot.color(1.0, Signed), [255, 255, 255]);
        assert_eq!(ColorMap::ColdNHot.color(-1.0, Signed), [0, 255, 255]);
        assert_eq!(ColorMap::Seismic.color(f32::NAN, Signed), [255, 255, 255]);
    }

    #[test]
    fn names_round_trip() {
        for map in ColorMap::ALL {
            assert_eq!(map.name().parse::<ColorMap>().unwrap(), map);
        }
        assert_eq!("Zennit-Seismic".parse(), Ok(ColorMap::ZennitSeismic));
        assert_eq!("grey".parse(), Ok(ColorMap::Gray));
        let err = "viridis".parse::<ColorMap>().unwrap_err();
        assert!(err.contains("zennit_seismic"), "{err}");
    }
}
