//! Colour maps for relevance maps in [−1, 1]: tables sampled once from `colorgrad`
//! linear gradients whose stops are those of the reference implementations.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use colorgrad::{Color, Gradient, GradientBuilder, LinearGradient};

/// A colour map for values in [−1, 1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColorMap {
    /// matplotlib's `seismic`: dark blue, blue, white (0), red, dark red. The paper's figures.
    #[default]
    Seismic,
    /// matplotlib's `bwr`: blue, white (0), red.
    Bwr,
    /// `coldnhot` of the LRP toolbox and Zennit: cyan, blue, black (0), red, yellow, white.
    ColdNHot,
    /// White at 0, black at ±1: ink for relevance, whatever its sign.
    Gray,
}

impl ColorMap {
    pub const ALL: [ColorMap; 4] = [
        ColorMap::Seismic,
        ColorMap::Bwr,
        ColorMap::ColdNHot,
        ColorMap::Gray,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ColorMap::Seismic => "seismic",
            ColorMap::Bwr => "bwr",
            ColorMap::ColdNHot => "coldnhot",
            ColorMap::Gray => "gray",
        }
    }

    /// The gradient's stops over [−1, 1]: (position, (r, g, b)) with channels in [0, 1].
    fn stops(self) -> &'static [(f32, [f32; 3])] {
        match self {
            // matplotlib `_seismic_data`, five colours evenly spaced.
            ColorMap::Seismic => &[
                (-1.0, [0.0, 0.0, 0.3]),
                (-0.5, [0.0, 0.0, 1.0]),
                (0.0, [1.0, 1.0, 1.0]),
                (0.5, [1.0, 0.0, 0.0]),
                (1.0, [0.5, 0.0, 0.0]),
            ],
            // matplotlib `_bwr_data`.
            ColorMap::Bwr => &[
                (-1.0, [0.0, 0.0, 1.0]),
                (0.0, [1.0, 1.0, 1.0]),
                (1.0, [1.0, 0.0, 0.0]),
            ],
            // hot(v) = clip(3v, 3v − 1, 3v − 2) for v ≥ 0 and cold(−v) = clip(0, −2v − 1, −2v)
            // for v < 0: piecewise linear with these corners.
            ColorMap::ColdNHot => &[
                (-1.0, [0.0, 1.0, 1.0]),
                (-0.5, [0.0, 0.0, 1.0]),
                (0.0, [0.0, 0.0, 0.0]),
                (1.0 / 3.0, [1.0, 0.0, 0.0]),
                (2.0 / 3.0, [1.0, 1.0, 0.0]),
                (1.0, [1.0, 1.0, 1.0]),
            ],
            ColorMap::Gray => &[
                (-1.0, [0.0, 0.0, 0.0]),
                (0.0, [1.0, 1.0, 1.0]),
                (1.0, [0.0, 0.0, 0.0]),
            ],
        }
    }

    /// The gradient over the domain [−1, 1], interpolated in plain (gamma-encoded) RGB as
    /// matplotlib does.
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

    /// The table: entry `i` is the gradient at `−1 + 2i/(N − 1)`, `N` = [`TABLE_SIZE`] (odd, so
    /// that 0 has an entry of its own and is drawn exactly white with seismic; matplotlib's
    /// 256-entry tables show 0 as (255, 253, 253)).
    pub fn table(self) -> &'static [[u8; 3]; TABLE_SIZE] {
        static TABLES: [OnceLock<[[u8; 3]; TABLE_SIZE]>; 4] = [const { OnceLock::new() }; 4];
        let index = ColorMap::ALL.iter().position(|&m| m == self).unwrap_or(0);
        TABLES[index].get_or_init(|| {
            let gradient = self.gradient();
            std::array::from_fn(|i| {
                let v = -1.0 + 2.0 * i as f32 / (TABLE_SIZE - 1) as f32;
                let [r, g, b, _] = gradient.at(v).to_rgba8();
                [r, g, b]
            })
        })
    }

    /// The colour of `v` in [−1, 1] (clamped; NaN is drawn as 0): the nearest table entry.
    pub fn color(self, v: f32) -> [u8; 3] {
        let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
        let index = ((v + 1.0) * 0.5 * (TABLE_SIZE - 1) as f32).round() as usize;
        self.table()[index.min(TABLE_SIZE - 1)]
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
        let lower = s.to_ascii_lowercase();
        ColorMap::ALL
            .into_iter()
            .find(|m| m.name() == lower || (lower == "grey" && *m == ColorMap::Gray))
            .ok_or_else(|| {
                format!("unknown colour map `{s}` (expected seismic, bwr, coldnhot or gray)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_white_for_the_symmetric_maps() {
        for map in [ColorMap::Seismic, ColorMap::Bwr, ColorMap::Gray] {
            assert_eq!(map.color(0.0), [255, 255, 255], "{map}");
        }
        assert_eq!(ColorMap::ColdNHot.color(0.0), [0, 0, 0]);
    }

    #[test]
    fn ends_match_the_reference_maps() {
        // matplotlib: seismic(0) = (0, 0, 0.3), seismic(1) = (0.5, 0, 0).
        assert_eq!(ColorMap::Seismic.color(-1.0), [0, 0, 77]);
        assert_eq!(ColorMap::Seismic.color(1.0), [128, 0, 0]);
        assert_eq!(ColorMap::Seismic.color(0.5), [255, 0, 0]);
        assert_eq!(ColorMap::Seismic.color(-0.5), [0, 0, 255]);
        assert_eq!(ColorMap::Bwr.color(1.0), [255, 0, 0]);
        assert_eq!(ColorMap::Bwr.color(-1.0), [0, 0, 255]);
        assert_eq!(ColorMap::ColdNHot.color(1.0), [255, 255, 255]);
        assert_eq!(ColorMap::ColdNHot.color(-1.0), [0, 255, 255]);
        assert_eq!(ColorMap::Gray.color(1.0), [0, 0, 0]);
        assert_eq!(ColorMap::Seismic.color(f32::NAN), [255, 255, 255]);
    }

    #[test]
    fn coldnhot_follows_hot_and_cold() {
        let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 1);
        // hot(v) = clip(3v, 3v − 1, 3v − 2): at v = 0.5, (1, 0.5, 0).
        let c = ColorMap::ColdNHot.color(0.5);
        assert!(close(c, [255, 128, 0]), "{c:?}");
        // cold(0.75) = (0, 0.5, 1).
        let c = ColorMap::ColdNHot.color(-0.75);
        assert!(close(c, [0, 128, 255]), "{c:?}");
    }

    #[test]
    fn names_round_trip() {
        for map in ColorMap::ALL {
            assert_eq!(map.name().parse::<ColorMap>().unwrap(), map);
        }
        assert!("viridis".parse::<ColorMap>().is_err());
    }
}
