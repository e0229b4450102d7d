//! The map-making parts of the baselines (docs/evaluation.md) that happen after the backward passes:
//! Grad-CAM from an activation and its gradient, bilinear upsampling, the random map.

/// `cam = relu(Σ_k α_k A_k)`, `α_k = mean_hw ∂z_t/∂A_k`, for one image and head.
/// activation, gradient `(h, w, C)` → `(h, w)`.
pub fn grad_cam(activation: &[f32], gradient: &[f32], channels: usize) -> Vec<f32> {
    let positions = activation.len() / channels;
    let mut alpha = vec![0.0f64; channels];
    for px in gradient.chunks_exact(channels) {
        alpha.iter_mut().zip(px).for_each(|(a, g)| *a += *g as f64);
    }
    alpha.iter_mut().for_each(|a| *a /= positions as f64);
    activation
        .chunks_exact(channels)
        .map(|px| {
            let v: f64 = px.iter().zip(&alpha).map(|(a, w)| *a as f64 * w).sum();
            v.max(0.0) as f32
        })
        .collect()
}

/// Bilinear resize of an `(h, w)` map to `side × side` with pixel centres aligned and edges
/// clamped: PyTorch's `interpolate(mode="bilinear", align_corners=False)`. (The image crate's
/// filters clamp f32 pixels to [0, 1], so they cannot resize a map.)
pub fn upsample(map: &[f32], h: usize, w: usize, side: usize) -> Vec<f32> {
    // Source coordinate of output index o along an axis of n samples; the two neighbours and the
    // weight of the second.
    let taps = |n: usize| -> Vec<(usize, usize, f32)> {
        let scale = n as f64 / side as f64;
        (0..side)
            .map(|o| {
                let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(n - 1);
                let i1 = (i0 + 1).min(n - 1);
                (i0, i1, (src - i0 as f64) as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(h), taps(w));
    let mut out = Vec::with_capacity(side * side);
    for &(y0, y1, fy) in &rows {
        for &(x0, x1, fx) in &cols {
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bottom = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// A uniform map in [0, 1), `side × side`, determined by `seed` (splitmix64).
pub fn random_map(seed: u64, side: usize) -> Vec<f32> {
    let mut state = seed;
    (0..side * side)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grad_cam_weights_channels_by_their_mean_gradient() {
        // Two positions, two channels: α = [1, −0.5].
        let a = [1.0, 2.0, 3.0, 0.0];
        let g = [2.0, -1.0, 0.0, 0.0];
        assert_eq!(grad_cam(&a, &g, 2), vec![0.0, 3.0]);
    }

    #[test]
    fn upsampling_keeps_constants_and_interpolates() {
        assert!(
            upsample(&[2.0; 4], 2, 2, 5)
                .iter()
                .all(|&v| (v - 2.0).abs() < 1e-6)
        );
        // 1×2 → 4×4: source x = (o + 0.5)/2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25.
        let up = upsample(&[0.0, 1.0], 1, 2, 4);
        assert_eq!(&up[..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&up[12..], &[0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn random_maps_are_reproducible() {
        assert_eq!(random_map(3, 4), random_map(3, 4));
        assert_ne!(random_map(3, 4), random_map(4, 4));
        assert!(random_map(9, 8).iter().all(|v| (0.0..1.0).contains(v)));
    }
}
