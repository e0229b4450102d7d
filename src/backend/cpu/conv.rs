//! 3×3 convolutions on the CPU: im2col over bands of output rows, one GEMM per band, bands in
//! parallel. Each band's product has the same sizes whatever the batch, so an image's result does
//! not depend on the other images (docs/method.md §Properties). The transposed convolution is the same correlation
//! with the flipped, transposed kernel, prepared once at load time.

use rayon::prelude::*;

use super::gemm::matmul;
use crate::backend::{ConvShape, Stabilizer};
use crate::model::ConvParams;

/// A conv layer's weights in the CPU layouts.
pub struct CpuConv {
    pub cin: usize,
    pub cout: usize,
    pub w: Vec<f32>,      // (3, 3, Cin, Cout): rows of the im2col product
    pub w_pos: Vec<f32>,  // (3, 3, Cin, Cout), max(w, 0)
    pub wt: Vec<f32>,     // (3, 3, Cout, Cin): flipped and transposed, for conv3x3ᵀ
    pub wt_pos: Vec<f32>, // (3, 3, Cout, Cin), max(w, 0)
    pub bias: Vec<f32>,   // (Cout)
}

impl CpuConv {
    pub fn new(p: &ConvParams) -> Self {
        let (cin, cout) = (p.cin, p.cout);
        let mut w = vec![0.0; 9 * cin * cout];
        let mut wt = vec![0.0; 9 * cin * cout];
        for co in 0..cout {
            for ci in 0..cin {
                for tap in 0..9 {
                    let v = p.weight[(co * cin + ci) * 9 + tap];
                    w[(tap * cin + ci) * cout + co] = v;
                    wt[((8 - tap) * cout + co) * cin + ci] = v;
                }
            }
        }
        let positive = |v: &Vec<f32>| v.iter().map(|x| x.max(0.0)).collect();
        CpuConv {
            cin,
            cout,
            w_pos: positive(&w),
            wt_pos: positive(&wt),
            w,
            wt,
            bias: p.bias.clone(),
        }
    }
}

/// Output rows per band: the im2col buffer stays near 1 MiB.
fn band_rows(h: usize, w: usize, cin: usize) -> usize {
    (((1 << 20) / (w * 9 * cin * 4).max(1)).max(1)).min(h)
}

/// im2col of output rows `y0..y1`: `cols[(y−y0)·W + x][(ky·3 + kx)·C + c] = x[y+ky−1][x+kx−1][c]`,
/// zero outside the image. x `(H, W, C)` of one image.
fn im2col(x: &[f32], h: usize, w: usize, c: usize, y0: usize, y1: usize, cols: &mut Vec<f32>) {
    cols.clear();
    cols.resize((y1 - y0) * w * 9 * c, 0.0);
    for y in y0..y1 {
        for xo in 0..w {
            let row = &mut cols[((y - y0) * w + xo) * 9 * c..][..9 * c];
            for ky in 0..3 {
                let yi = y + ky;
                if yi == 0 || yi > h {
                    continue;
                }
                for kx in 0..3 {
                    let xi = xo + kx;
                    if xi == 0 || xi > w {
                        continue;
                    }
                    let src = &x[((yi - 1) * w + xi - 1) * c..][..c];
                    row[(ky * 3 + kx) * c..][..c].copy_from_slice(src);
                }
            }
        }
    }
}

/// The shared correlation: for each map `x (rows, H, W, Cin)`, `out (rows, H, W, Cout)`
/// = conv3x3(x, weights (3, 3, Cin, Cout)), then `epilogue(row, y0, band)` on each band of output
/// rows `y0..` while it is hot in cache.
#[allow(clippy::too_many_arguments)]
pub fn correlate(
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    x: &[f32],
    weights: &[f32],
    out: &mut [f32],
    epilogue: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let band = band_rows(h, w, cin);
    out.par_chunks_mut(h * w * cout)
        .zip(x.par_chunks(h * w * cin))
        .enumerate()
        .for_each(|(row, (out_map, x_map))| {
            out_map
                .par_chunks_mut(band * w * cout)
                .enumerate()
                .for_each_init(Vec::new, |cols, (b, out_band)| {
                    let y0 = b * band;
                    let y1 = (y0 + band).min(h);
                    im2col(x_map, h, w, cin, y0, y1, cols);
                    matmul((y1 - y0) * w, cout, 9 * cin, cols, weights, out_band);
                    epilogue(row, y0, out_band);
                });
        });
}

/// `y = relu(conv3x3(x, W) + b)`.
pub fn conv3x3_forward(s: ConvShape, x: &[f32], w: &CpuConv) -> Vec<f32> {
    let mut y = vec![0.0; s.output_len()];
    correlate(s.h, s.w, s.cin, s.cout, x, &w.w, &mut y, |_, _, band| {
        for px in band.chunks_exact_mut(s.cout) {
            for (v, b) in px.iter_mut().zip(&w.bias) {
                *v = (*v + b).max(0.0);
            }
        }
    });
    y
}

/// The fused forward: `a′ = relu(conv3x3(x, W) + b)` and `q = a′ / stab(conv3x3(x, W⁺) + β)`.
pub fn conv3x3_dual(
    s: ConvShape,
    x: &[f32],
    w: &CpuConv,
    beta: Option<&[f32]>,
    stab: Stabilizer,
) -> (Vec<f32>, Vec<f32>) {
    let y = conv3x3_forward(s, x, w);
    let mut q = vec![0.0; s.output_len()];
    correlate(s.h, s.w, s.cin, s.cout, x, &w.w_pos, &mut q, |_, _, _| {});
    quotient(&y, &mut q, s.cout, beta, stab);
    (y, q)
}

/// `q ← y / stab(z⁺ + β)` in place over pixels of `channels`: `q` holds z⁺ on entry.
pub fn quotient(y: &[f32], q: &mut [f32], channels: usize, beta: Option<&[f32]>, stab: Stabilizer) {
    q.par_chunks_mut(channels)
        .zip(y.par_chunks(channels))
        .for_each(|(qp, yp)| {
            for (j, (qv, yv)) in qp.iter_mut().zip(yp).enumerate() {
                let z = beta.map_or(*qv, |b| *qv + b[j]);
                *qv = yv / stab.apply(z);
            }
        });
}

/// `s = r / stab(conv3x3(a, W_set) + β)` for each of the `heads` relevance maps of every image.
pub fn conv_quotient(
    s: ConvShape,
    heads: usize,
    a: &[f32],
    weights: &[f32],
    beta: Option<&[f32]>,
    stab: Stabilizer,
    r: &[f32],
) -> Vec<f32> {
    let mut z = vec![0.0; s.output_len()];
    correlate(s.h, s.w, s.cin, s.cout, a, weights, &mut z, |_, _, band| {
        if let Some(beta) = beta {
            for px in band.chunks_exact_mut(s.cout) {
                px.iter_mut().zip(beta).for_each(|(v, b)| *v += b);
            }
        }
    });
    divide(&z, s.h * s.w * s.cout, heads, stab, r)
}

/// `s[n·K + k] = r[n·K + k] / stab(z[n])`, elementwise over maps of `map` values.
pub fn divide(z: &[f32], map: usize, heads: usize, stab: Stabilizer, r: &[f32]) -> Vec<f32> {
    let mut s = vec![0.0; r.len()];
    s.par_chunks_mut(map)
        .zip(r.par_chunks(map))
        .enumerate()
        .for_each(|(row, (s_map, r_map))| {
            let z_map = &z[(row / heads) * map..][..map];
            for ((sv, rv), zv) in s_map.iter_mut().zip(r_map).zip(z_map) {
                *sv = rv / stab.apply(*zv);
            }
        });
    s
}

/// `c = conv3x3ᵀ(g, W_set)`, times the head's activation `act` when given.
pub fn conv_transpose(
    s: ConvShape,
    heads: usize,
    g: &[f32],
    weights_t: &[f32],
    act: Option<&[f32]>,
) -> Vec<f32> {
    let rows = g.len() / (s.h * s.w * s.cout).max(1);
    let mut c = vec![0.0; rows * s.h * s.w * s.cin];
    let map = s.h * s.w * s.cin;
    correlate(
        s.h,
        s.w,
        s.cout,
        s.cin,
        g,
        weights_t,
        &mut c,
        |row, y0, band| {
            if let Some(act) = act {
                let a = &act[(row / heads) * map + y0 * s.w * s.cin..][..band.len()];
                band.iter_mut().zip(a).for_each(|(v, a)| *v *= a);
            }
        },
    );
    c
}
