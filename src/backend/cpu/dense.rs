//! Dense layers on the CPU. A batch is a handful of rows against a large weight matrix, so these
//! are memory-bound: each weight row is read once for all rows, with fixed-order dot products.

use rayon::prelude::*;

use super::gemm::{axpy, dot};
use crate::backend::{DenseShape, Stabilizer};
use crate::model::DenseParams;

/// A dense layer's weights in the CPU layouts.
pub struct CpuDense {
    pub w: Vec<f32>,     // (out, in)
    pub w_pos: Vec<f32>, // (out, in), max(w, 0)
    pub bias: Vec<f32>,  // (out)
}

impl CpuDense {
    pub fn new(p: &DenseParams) -> Self {
        CpuDense {
            w_pos: p.weight.iter().map(|v| v.max(0.0)).collect(),
            w: p.weight.clone(),
            bias: p.bias.clone(),
        }
    }
}

/// `y (n, out) = x (n, in) · Wᵀ + β`, with ReLU when asked.
pub fn dense_forward(
    s: DenseShape,
    x: &[f32],
    w: &[f32],
    beta: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    // Computed as (out, n) so that each thread owns whole weight rows, then transposed.
    let mut yt = vec![0.0; s.outputs * s.n];
    yt.par_chunks_mut(s.n)
        .zip(w.par_chunks(s.inputs))
        .enumerate()
        .for_each(|(j, (col, w_row))| {
            let b = beta.map_or(0.0, |b| b[j]);
            for (v, x_row) in col.iter_mut().zip(x.chunks_exact(s.inputs)) {
                let z = dot(x_row, w_row) + b;
                *v = if relu { z.max(0.0) } else { z };
            }
        });
    let mut y = vec![0.0; s.n * s.outputs];
    for (j, col) in yt.chunks_exact(s.n).enumerate() {
        for (i, v) in col.iter().enumerate() {
            y[i * s.outputs + j] = *v;
        }
    }
    y
}

/// The fused forward: `a′ = W x + b` (ReLU when `relu`) and `q = a′ / stab(W⁺ x + β)`; without
/// ReLU (the logits) `q = 1 / stab(W⁺ x + β)`.
pub fn dense_dual(
    s: DenseShape,
    x: &[f32],
    w: &CpuDense,
    relu: bool,
    beta: Option<&[f32]>,
    stab: Stabilizer,
) -> (Vec<f32>, Vec<f32>) {
    let y = dense_forward(s, x, &w.w, Some(&w.bias), relu);
    let mut q = dense_forward(s, x, &w.w_pos, None, false);
    if relu {
        super::conv::quotient(&y, &mut q, s.outputs, beta, stab);
    } else {
        super::conv::quotient(&vec![1.0; y.len()], &mut q, s.outputs, beta, stab);
    }
    (y, q)
}

/// `s = r / stab(a · W⁺ᵀ + β)` for every head of every row.
pub fn dense_quotient(
    s: DenseShape,
    heads: usize,
    a: &[f32],
    w_pos: &[f32],
    beta: Option<&[f32]>,
    stab: Stabilizer,
    r: &[f32],
) -> Vec<f32> {
    let z = dense_forward(s, a, w_pos, beta, false);
    super::conv::divide(&z, s.outputs, heads, stab, r)
}

/// `c (rows, in) = g (rows, out) · W`, times the head's activation when given.
pub fn dense_transpose(
    s: DenseShape,
    heads: usize,
    g: &[f32],
    w: &[f32],
    act: Option<&[f32]>,
) -> Vec<f32> {
    const BLOCK: usize = 512;
    let rows = g.len() / s.outputs.max(1);
    // Blocks of input columns, each owned by one task, accumulated in a fixed order over outputs.
    let blocks: Vec<Vec<f32>> = (0..s.inputs.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let i0 = b * BLOCK;
            let width = BLOCK.min(s.inputs - i0);
            let mut acc = vec![0.0f32; rows * width];
            for (j, w_row) in w.chunks_exact(s.inputs).enumerate() {
                let w_blk = &w_row[i0..i0 + width];
                for (r, acc_row) in acc.chunks_exact_mut(width).enumerate() {
                    let gj = g[r * s.outputs + j];
                    if gj != 0.0 {
                        axpy(acc_row, gj, w_blk);
                    }
                }
            }
            acc
        })
        .collect();
    let mut c = vec![0.0; rows * s.inputs];
    for (b, acc) in blocks.iter().enumerate() {
        let i0 = b * BLOCK;
        let width = acc.len() / rows.max(1);
        for r in 0..rows {
            c[r * s.inputs + i0..][..width].copy_from_slice(&acc[r * width..][..width]);
        }
    }
    if let Some(act) = act {
        c.par_chunks_mut(s.inputs).enumerate().for_each(|(r, row)| {
            let a = &act[(r / heads) * s.inputs..][..s.inputs];
            row.iter_mut().zip(a).for_each(|(v, a)| *v *= a);
        });
    }
    c
}
