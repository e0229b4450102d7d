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

#[cfg(test)]
mod tests {
    use super::*;

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
}
