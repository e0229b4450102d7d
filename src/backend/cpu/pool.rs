//! 2×2 max pooling and its routing on the CPU.

use rayon::prelude::*;

use crate::backend::PoolShape;

/// Max pooling that records, per output, the flat index `(y·W + x)·C + c` within its image of the
/// first maximum in row-major window order (the tie rule of PyTorch and of docs/method.md §Rules).
pub fn maxpool_forward(s: PoolShape, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (ho, wo) = (s.h / 2, s.w / 2);
    let out_map = ho * wo * s.c;
    let mut y = vec![0.0; s.n * out_map];
    let mut argmax = vec![0u32; s.n * out_map];
    y.par_chunks_mut(out_map)
        .zip(argmax.par_chunks_mut(out_map))
        .zip(x.par_chunks(s.h * s.w * s.c))
        .for_each(|((y_map, idx_map), x_map)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    for c in 0..s.c {
                        let mut best = usize::MAX;
                        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            let i = ((2 * oy + dy) * s.w + 2 * ox + dx) * s.c + c;
                            if best == usize::MAX || x_map[i] > x_map[best] {
                                best = i;
                            }
                        }
                        let o = (oy * wo + ox) * s.c + c;
                        y_map[o] = x_map[best];
                        idx_map[o] = best as u32;
                    }
                }
            }
        });
    (y, argmax)
}

/// Routes each output's value to its argmax; the rest of the input map is zero.
pub fn maxpool_route(s: PoolShape, heads: usize, r: &[f32], argmax: &[u32]) -> Vec<f32> {
    let out_map = (s.h / 2) * (s.w / 2) * s.c;
    let in_map = s.h * s.w * s.c;
    let rows = r.len() / out_map.max(1);
    let mut routed = vec![0.0; rows * in_map];
    routed
        .par_chunks_mut(in_map)
        .zip(r.par_chunks(out_map))
        .enumerate()
        .for_each(|(row, (dst, src))| {
            let idx = &argmax[(row / heads) * out_map..][..out_map];
            for (v, &i) in src.iter().zip(idx) {
                dst[i as usize] = *v;
            }
        });
    routed
}

/// `r ⊙ m` per image: map `row` of `r` (`map` values each) times map `row / heads` of `m`.
pub fn scale_heads(map: usize, heads: usize, r: &[f32], m: &[f32]) -> Vec<f32> {
    let mut out = r.to_vec();
    out.par_chunks_mut(map.max(1))
        .enumerate()
        .for_each(|(row, dst)| {
            let src = &m[(row / heads) * map..][..dst.len()];
            dst.iter_mut().zip(src).for_each(|(v, a)| *v *= a);
        });
    out
}
