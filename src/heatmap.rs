//! From input relevance to a heatmap (docs/method.md §Heatmaps).

/// How the channels of a relevance map become one value per pixel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HeatmapKind {
    /// `Σ_c max(R_c, 0)`: the paper's Eq. 6 and 9 as its code does it (clip each element, then
    /// sum the channels). Negative evidence is dropped.
    #[default]
    Positive,
    /// `Σ_c R_c`: positive and negative evidence, for a symmetric display around 0.
    Signed,
    /// `Σ_c |R_c|`: how much relevance a pixel carries, whatever its sign.
    Absolute,
}

impl HeatmapKind {
    pub const ALL: [HeatmapKind; 3] = [
        HeatmapKind::Positive,
        HeatmapKind::Signed,
        HeatmapKind::Absolute,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HeatmapKind::Positive => "positive",
            HeatmapKind::Signed => "signed",
            HeatmapKind::Absolute => "absolute",
        }
    }

    /// One element's contribution to its pixel.
    #[inline]
    pub fn term(self, r: f32) -> f32 {
        match self {
            HeatmapKind::Positive => r.max(0.0),
            HeatmapKind::Signed => r,
            HeatmapKind::Absolute => r.abs(),
        }
    }
}

impl std::fmt::Display for HeatmapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HeatmapKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HeatmapKind::ALL
            .into_iter()
            .find(|k| k.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown heatmap `{s}` (expected positive, signed or absolute)"))
    }
}

/// The heatmap of a `(C, H, W)` map: each pixel's channels combined as `kind` says. Returns
/// `(H, W)`.
pub fn heatmap(relevance: &[f32], channels: usize, kind: HeatmapKind) -> Vec<f32> {
    let plane = relevance.len() / channels;
    (0..plane)
        .map(|p| {
            (0..channels)
                .map(|c| kind.term(relevance[c * plane + p]))
                .sum()
        })
        .collect()
}

/// Divides a map by its largest absolute value, so that it lies in [−1, 1] with 0 kept at 0.
/// An all-zero map stays zero.
pub fn normalize(map: &[f32]) -> Vec<f32> {
    let max = map.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return map.to_vec();
    }
    map.iter().map(|v| v / max).collect()
}

/// The value a heatmap is divided by for display (docs/method.md §Heatmaps): its largest
/// |value| when `clip_percent` is 0, else Captum's `outlier_perc` threshold: the smallest |value|
/// such that the |values| up to it hold at least `100 − clip_percent` % of the total |value|,
/// so that the strongest pixels holding `clip_percent` % of the relevance saturate. Symmetric:
/// the same for −v and v. Non-finite values are ignored; 0 when nothing is left.
pub fn display_scale(map: &[f32], clip_percent: f32) -> f32 {
    let mut magnitudes: Vec<f32> = map
        .iter()
        .filter(|v| v.is_finite() && **v != 0.0)
        .map(|v| v.abs())
        .collect();
    if magnitudes.is_empty() {
        return 0.0;
    }
    if clip_percent <= 0.0 {
        return magnitudes.iter().fold(0.0, |m, &v| m.max(v));
    }
    magnitudes.sort_unstable_by(f32::total_cmp);
    let total: f64 = magnitudes.iter().map(|&v| f64::from(v)).sum();
    let wanted = total * f64::from(100.0 - clip_percent.min(100.0)) / 100.0;
    let mut sum = 0.0f64;
    for &v in &magnitudes {
        sum += f64::from(v);
        if sum >= wanted {
            return v;
        }
    }
    magnitudes[magnitudes.len() - 1]
}

/// A heatmap ready to be coloured: each value divided by `scale` and clamped, so that it lies in
/// [−1, 1] for signed heatmaps and in [0, 1] for positive and absolute ones, 0 kept at 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Display {
    /// `(H, W)`.
    pub values: Vec<f32>,
    pub kind: HeatmapKind,
    /// The heatmap value drawn at the colour map's end (±scale for signed heatmaps); 0 when the
    /// heatmap holds nothing to draw.
    pub scale: f32,
    /// The outlier percentage `scale` was chosen with (0: the largest |value|).
    pub clip_percent: f32,
}

impl Display {
    /// The heatmap of a `(C, H, W)` map, scaled for display.
    pub fn new(relevance: &[f32], channels: usize, kind: HeatmapKind, clip_percent: f32) -> Self {
        Display::of_heatmap(heatmap(relevance, channels, kind), kind, clip_percent)
    }

    /// A heatmap of `kind` already made (by the backend), scaled for display.
    pub fn of_heatmap(map: Vec<f32>, kind: HeatmapKind, clip_percent: f32) -> Self {
        let scale = display_scale(&map, clip_percent);
        let values = if scale > 0.0 {
            map.iter()
                .map(|&v| {
                    if v.is_nan() {
                        0.0
                    } else {
                        (v / scale).clamp(-1.0, 1.0)
                    }
                })
                .collect()
        } else {
            vec![0.0; map.len()]
        };
        Display {
            values,
            kind,
            scale,
            clip_percent,
        }
    }

    /// This `(h, w)` heatmap on a `side × side` grid, each value repeated over the pixels it
    /// covers (nearest neighbour, no smoothing): a layer's map drawn at the image's size.
    pub fn upsampled(self, h: usize, w: usize, side: usize) -> Display {
        let values = (0..side * side)
            .map(|p| self.values[(p / side) * h / side * w + (p % side) * w / side])
            .collect();
        Display { values, ..self }
    }

    /// Whether there is nothing to draw: a positive heatmap of a map without positive relevance,
    /// or an all-zero map.
    pub fn is_empty(&self) -> bool {
        self.scale == 0.0
    }

    /// What an empty panel says.
    pub fn empty_note(&self) -> &'static str {
        match self.kind {
            HeatmapKind::Positive => "no positive relevance",
            HeatmapKind::Signed | HeatmapKind::Absolute => "no relevance",
        }
    }

    /// The scale as written under a panel: `max 3.1e-3`, or `±3.1e-3` for a signed heatmap.
    pub fn scale_note(&self) -> String {
        let value = format_scale(self.scale);
        match self.kind {
            HeatmapKind::Signed => format!("±{value}"),
            HeatmapKind::Positive | HeatmapKind::Absolute => format!("max {value}"),
        }
    }
}

/// Three significant digits, in scientific notation outside [0.01, 1000).
pub fn format_scale(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (0.01..1000.0).contains(&a) {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_repeats_each_value_over_its_pixels() {
        // A 2×3 map on a 4×4 grid: rows 0‥1 → 0, 2‥3 → 1; columns 0,1 → 0, 2 → 1, 3 → 2.
        let d = Display::new(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            1,
            HeatmapKind::Positive,
            0.0,
        );
        let up = d.clone().upsampled(2, 3, 4);
        let v: Vec<f32> = up.values.iter().map(|x| x * 6.0).collect();
        assert_eq!(
            v,
            [
                1.0, 1.0, 2.0, 3.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0, 4.0, 4.0, 5.0, 6.0
            ]
        );
        assert_eq!(up.scale, d.scale);
    }

    #[test]
    fn heatmap_clips_then_sums_channels() {
        // Two pixels, channels-first.
        let r = [1.0, -2.0, /* c1 */ -1.0, 3.0, /* c2 */ 0.5, -0.5];
        assert_eq!(heatmap(&r, 3, HeatmapKind::Positive), vec![1.5, 3.0]);
        assert_eq!(heatmap(&r, 3, HeatmapKind::Signed), vec![0.5, 0.5]);
        assert_eq!(heatmap(&r, 3, HeatmapKind::Absolute), vec![2.5, 5.5]);
        assert_eq!(
            heatmap(&[-1.0, 2.0], 1, HeatmapKind::Positive),
            vec![0.0, 2.0]
        );
        assert_eq!("Signed".parse::<HeatmapKind>(), Ok(HeatmapKind::Signed));
        assert_eq!(normalize(&[1.5, -3.0]), vec![0.5, -1.0]);
        assert_eq!(normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn scale_is_the_largest_magnitude_or_the_outlier_threshold() {
        assert_eq!(display_scale(&[1.0, -4.0, 2.0, f32::NAN], 0.0), 4.0);
        assert_eq!(display_scale(&[0.0, 0.0], 5.0), 0.0);
        // |values| 1, 2, 3, 4 (total 10): 60 % of the mass is reached at 3 (1 + 2 + 3 = 6).
        assert_eq!(display_scale(&[4.0, -1.0, 3.0, -2.0], 40.0), 3.0);
        assert_eq!(display_scale(&[4.0, -1.0, 3.0, -2.0], 41.0), 3.0);
        assert_eq!(display_scale(&[4.0, -1.0, 3.0, -2.0], 70.0), 2.0);
        assert_eq!(display_scale(&[4.0, -1.0, 3.0, -2.0], 10.0), 4.0);
        assert_eq!(
            display_scale(&[-4.0, 1.0, -3.0, 2.0], 40.0),
            3.0,
            "symmetric"
        );
    }

    #[test]
    fn display_values_are_clamped_and_zero_stays_zero() {
        // One channel, four pixels; |values| 1, 2, 8: 25 % of 11 is reached at 2.
        let d = Display::new(&[-2.0, 0.0, 1.0, 8.0], 1, HeatmapKind::Signed, 75.0);
        assert_eq!(d.scale, 2.0);
        assert_eq!(d.values, vec![-1.0, 0.0, 0.5, 1.0]);
        assert_eq!(d.scale_note(), "±2.00");
        let d = Display::new(&[-2.0, -1.0], 1, HeatmapKind::Positive, 0.0);
        assert!(d.is_empty());
        assert_eq!(d.values, vec![0.0, 0.0]);
        assert_eq!(d.empty_note(), "no positive relevance");
        assert_eq!(format_scale(0.000123), "1.23e-4");
        assert_eq!(format_scale(12.345), "12.3");
    }
}
