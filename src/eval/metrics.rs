//! The evaluation metrics of docs/evaluation.md on one heatmap: where maximal patch masking puts its patch,
//! and the energy pointing game.

use super::occlusion::Rect;

/// The index of the first maximum in row-major order.
pub fn argmax_first(map: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in map.iter().enumerate() {
        if *v > map[best] {
            best = i;
        }
    }
    best
}

/// The `p × p` patch centred on `(y, x)` of a `side × side` map, clipped at the border.
pub fn patch(y: usize, x: usize, p: usize, side: usize) -> Rect {
    let before = (p - 1) / 2;
    Rect {
        y0: y.saturating_sub(before),
        y1: (y + p - before).min(side),
        x0: x.saturating_sub(before),
        x1: (x + p - before).min(side),
    }
}

/// The energy pointing game: for each fraction `E`, the threshold `τ_E` keeps the top `E` of the
/// map's positive pixels (`#(M ≥ τ) / #(M > 0) = E`, rounded up to whole pixels; ties with `τ`
/// count too); of the kept pixels, those inside the boxes are hits, the rest misses; the score is
/// hits / (hits + misses). A map without a positive pixel scores 0 at every `E`.
pub fn pointing_game(map: &[f32], inside: &[bool], energies: &[f64]) -> Vec<f64> {
    let mut positive: Vec<f32> = map.iter().copied().filter(|v| *v > 0.0).collect();
    if positive.is_empty() {
        return vec![0.0; energies.len()];
    }
    positive.sort_by(|a, b| b.total_cmp(a));
    energies
        .iter()
        .map(|&e| {
            let keep = ((e * positive.len() as f64).ceil() as usize).clamp(1, positive.len());
            let tau = positive[keep - 1];
            let (mut hits, mut kept) = (0usize, 0usize);
            for (v, &is_in) in map.iter().zip(inside) {
                if *v >= tau {
                    kept += 1;
                    hits += usize::from(is_in);
                }
            }
            hits as f64 / kept as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_maximum_wins() {
        assert_eq!(argmax_first(&[1.0, 3.0, 2.0, 3.0]), 1);
        assert_eq!(argmax_first(&[0.0; 4]), 0);
    }

    #[test]
    fn patches_are_centred_and_clipped() {
        assert_eq!(
            patch(5, 5, 3, 10),
            Rect {
                y0: 4,
                y1: 7,
                x0: 4,
                x1: 7
            }
        );
        assert_eq!(
            patch(0, 9, 5, 10),
            Rect {
                y0: 0,
                y1: 3,
                x0: 7,
                x1: 10
            }
        );
        assert_eq!(
            patch(3, 3, 1, 10),
            Rect {
                y0: 3,
                y1: 4,
                x0: 3,
                x1: 4
            }
        );
    }

    #[test]
    fn pointing_game_by_hand() {
        // A 4×4 map: five positive pixels, 0.9 and 0.7 inside the box (the left column), the
        // rest outside.
        #[rustfmt::skip]
        let map = [
            0.9, 0.8, 0.0, 0.0,
            0.7, 0.0, 0.0, -1.0,
            0.0, 0.0, 0.6, 0.0,
            0.0, 0.5, 0.0, 0.0,
        ];
        let inside: Vec<bool> = (0..16).map(|i| i % 4 == 0).collect();
        // E = 20 %: 1 pixel (0.9, a hit); 40 %: 2 (0.9, 0.8): ½; 60 %: 3 (+0.7): ⅔;
        // 100 %: all 5: ⅖.
        let scores = pointing_game(&map, &inside, &[0.2, 0.4, 0.6, 1.0]);
        assert_eq!(scores, vec![1.0, 0.5, 2.0 / 3.0, 0.4]);
        assert_eq!(
            pointing_game(&[0.0, -1.0], &[true, true], &[0.5]),
            vec![0.0]
        );
    }
}
