//! From input relevance to a heatmap (SPEC §6).

/// `Σ_c max(R_c, 0)` of a `(C, H, W)` map: the paper's Eq. 6 and 9 as its code does it (clip
/// each element, then sum the channels). Returns `(H, W)`.
pub fn heatmap(relevance: &[f32], channels: usize) -> Vec<f32> {
    let plane = relevance.len() / channels;
    (0..plane)
        .map(|p| {
            (0..channels)
                .map(|c| relevance[c * plane + p].max(0.0))
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
        assert_eq!(heatmap(&r, 3), vec![1.5, 3.0]);
        assert_eq!(heatmap(&[-1.0, 2.0], 1), vec![0.0, 2.0]);
        assert_eq!(normalize(&[1.5, -3.0]), vec![0.5, -1.0]);
        assert_eq!(normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
    }
}
