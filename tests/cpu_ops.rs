//! The CPU backend's ops against direct loops written from docs/method.md §Rules, on random odd shapes.

mod common;

use common::{Rng, rel_l2};
use sglrp::backend::cpu::CpuBackend;
use sglrp::backend::{
    Backend, BiasMode, ConvShape, DenseShape, Mask, PoolShape, Stabilizer, WeightSet,
};
use sglrp::model::{ConvParams, DenseParams};

const SHAPE: ConvShape = ConvShape {
    n: 2,
    h: 7,
    w: 5,
    cin: 3,
    cout: 5,
};
const HEADS: usize = 3;

fn conv_params(rng: &mut Rng, cin: usize, cout: usize) -> ConvParams {
    ConvParams {
        cin,
        cout,
        weight: rng.vec(cout * cin * 9, -1.0, 1.0),
        bias: rng.vec(cout, -0.5, 0.5),
    }
}

/// Direct convolution in f64: `out[n][y][x][co] = Σ w[co][ci][ky][kx]·x[n][y+ky−1][x+kx−1][ci]`.
fn conv_direct(s: ConvShape, x: &[f32], weight: impl Fn(usize, usize, usize) -> f64) -> Vec<f64> {
    let mut out = vec![0.0; s.output_len()];
    for n in 0..s.n {
        for y in 0..s.h {
            for xo in 0..s.w {
                for co in 0..s.cout {
                    let mut acc = 0.0;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (yi, xi) = (y + ky, xo + kx);
                            if yi == 0 || yi > s.h || xi == 0 || xi > s.w {
                                continue;
                            }
                            for ci in 0..s.cin {
                                let v = x[((n * s.h + yi - 1) * s.w + xi - 1) * s.cin + ci] as f64;
                                acc += v * weight(co, ci, ky * 3 + kx);
                            }
                        }
                    }
                    out[((n * s.h + y) * s.w + xo) * s.cout + co] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn conv_forward_matches_direct_loops() {
    let mut rng = Rng::new(11);
    let b = CpuBackend::new(Some(2)).unwrap();
    let p = conv_params(&mut rng, SHAPE.cin, SHAPE.cout);
    let x = rng.vec(SHAPE.input_len(), -1.0, 1.0);
    let y = b
        .conv3x3_forward(SHAPE, &x, &b.prepare_conv(&p).unwrap())
        .unwrap();
    let want = conv_direct(SHAPE, &x, |co, ci, tap| {
        p.weight[(co * SHAPE.cin + ci) * 9 + tap] as f64
    });
    let want: Vec<f32> = want
        .iter()
        .enumerate()
        .map(|(i, v)| (v + p.bias[i % SHAPE.cout] as f64).max(0.0) as f32)
        .collect();
    assert!(rel_l2(&y, &want) < 1e-6, "rel {}", rel_l2(&y, &want));
    assert!(
        y.contains(&0.0) && y.iter().any(|&v| v > 0.0),
        "ReLU both ways"
    );
}

#[test]
fn zplus_conv_matches_the_rule() {
    let mut rng = Rng::new(12);
    let b = CpuBackend::new(Some(2)).unwrap();
    let p = conv_params(&mut rng, SHAPE.cin, SHAPE.cout);
    let w = b.prepare_conv(&p).unwrap();
    let a = rng.vec(SHAPE.input_len(), 0.0, 1.0);
    let r = rng.vec(SHAPE.output_len() * HEADS, -1.0, 1.0);
    let wpos = |co: usize, ci: usize, tap: usize| {
        p.weight[(co * SHAPE.cin + ci) * 9 + tap].max(0.0) as f64
    };
    let z = conv_direct(SHAPE, &a, wpos);
    for (bias, beta) in [
        (BiasMode::None, vec![0.0; SHAPE.cout]),
        (
            BiasMode::Positive,
            p.bias.iter().map(|v| v.max(0.0) as f64).collect(),
        ),
        (BiasMode::Full, p.bias.iter().map(|&v| v as f64).collect()),
    ] {
        let stab = Stabilizer::Epsilon(1e-6);
        let s = b
            .conv_quotient(SHAPE, HEADS, &a, &w, WeightSet::Positive, bias, stab, &r)
            .unwrap();
        let map = SHAPE.output_len() / SHAPE.n;
        let want: Vec<f32> = r
            .iter()
            .enumerate()
            .map(|(i, rv)| {
                let zi = (i / map / HEADS) * map + i % map;
                let d = z[zi] + beta[i % SHAPE.cout];
                (*rv as f64 / (d + if d >= 0.0 { 1e-6 } else { -1e-6 })) as f32
            })
            .collect();
        assert!(
            rel_l2(&s, &want) < 1e-5,
            "{bias:?}: rel {}",
            rel_l2(&s, &want)
        );

        // Redistribution: R_i = a_i Σ_j w⁺_ij s_j, for every head.
        let out = b
            .conv_transpose(SHAPE, HEADS, &s, &w, WeightSet::Positive, Some(&a))
            .unwrap();
        let tshape = ConvShape {
            n: SHAPE.n * HEADS,
            cin: SHAPE.cout,
            cout: SHAPE.cin,
            ..SHAPE
        };
        // conv3x3ᵀ is the correlation with the flipped kernel, channels swapped.
        let c = conv_direct(tshape, &s, |ci, co, tap| {
            p.weight[(co * SHAPE.cin + ci) * 9 + 8 - tap].max(0.0) as f64
        });
        let amap = SHAPE.input_len() / SHAPE.n;
        let want: Vec<f32> = c
            .iter()
            .enumerate()
            .map(|(i, cv)| (cv * a[(i / amap / HEADS) * amap + i % amap] as f64) as f32)
            .collect();
        assert!(
            rel_l2(&out, &want) < 1e-5,
            "{bias:?}: rel {}",
            rel_l2(&out, &want)
        );
    }
}

#[test]
fn conv_transpose_is_the_adjoint() {
    // ⟨conv(x), g⟩ = ⟨x, convᵀ(g)⟩ for the plain weights, without bias and ReLU.
    let mut rng = Rng::new(13);
    let b = CpuBackend::new(Some(2)).unwrap();
    let mut p = conv_params(&mut rng, SHAPE.cin, SHAPE.cout);
    p.bias.fill(0.0);
    let w = b.prepare_conv(&p).unwrap();
    let x = rng.vec(SHAPE.input_len(), -1.0, 1.0);
    let g = rng.vec(SHAPE.output_len(), -1.0, 1.0);
    let y = conv_direct(SHAPE, &x, |co, ci, tap| {
        p.weight[(co * SHAPE.cin + ci) * 9 + tap] as f64
    });
    let gt = b
        .conv_transpose(SHAPE, 1, &g, &w, WeightSet::Plain, None)
        .unwrap();
    let lhs: f64 = y.iter().zip(&g).map(|(a, b)| a * *b as f64).sum();
    let rhs: f64 = x.iter().zip(&gt).map(|(a, b)| *a as f64 * *b as f64).sum();
    assert!(
        (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
        "{lhs} vs {rhs}"
    );
}

#[test]
fn maxpool_takes_the_first_maximum_and_routes_to_it() {
    let b = CpuBackend::new(Some(1)).unwrap();
    // One 5×3 map, one channel: floor pooling gives 2×1; the first window has a tie.
    let s = PoolShape {
        n: 1,
        h: 5,
        w: 3,
        c: 1,
    };
    let x = vec![
        1.0, 4.0, 9.0, //
        4.0, 2.0, 9.0, //
        0.0, 1.0, 9.0, //
        3.0, 2.0, 9.0, //
        7.0, 7.0, 7.0,
    ];
    let (y, idx) = b.maxpool_forward(s, &x).unwrap();
    assert_eq!(y, vec![4.0, 3.0]);
    assert_eq!(idx, vec![1, 9]);
    let routed = b
        .maxpool_route(s, 2, &vec![10.0, 20.0, -1.0, -2.0], &idx)
        .unwrap();
    let mut want = vec![0.0; 30];
    want[1] = 10.0;
    want[9] = 20.0;
    want[15 + 1] = -1.0;
    want[15 + 9] = -2.0;
    assert_eq!(routed, want);
}

#[test]
fn dense_ops_match_direct_loops() {
    let mut rng = Rng::new(14);
    let b = CpuBackend::new(Some(2)).unwrap();
    let s = DenseShape {
        n: 3,
        inputs: 1037,
        outputs: 13,
    };
    let p = DenseParams {
        inputs: s.inputs,
        outputs: s.outputs,
        weight: rng.vec(s.inputs * s.outputs, -1.0, 1.0),
        bias: rng.vec(s.outputs, -1.0, 1.0),
    };
    let w = b.prepare_dense(&p).unwrap();
    let a = rng.vec(s.n * s.inputs, 0.0, 1.0);
    let r = rng.vec(s.n * HEADS * s.outputs, -1.0, 1.0);
    let dot = |x: &[f32], row: usize, pos: bool| -> f64 {
        (0..s.inputs)
            .map(|i| {
                let wv = p.weight[row * s.inputs + i];
                x[i] as f64 * if pos { wv.max(0.0) } else { wv } as f64
            })
            .sum()
    };
    let y = b.dense_forward(s, &a, &w, true).unwrap();
    let want: Vec<f32> = (0..s.n * s.outputs)
        .map(|k| {
            (dot(&a[k / s.outputs * s.inputs..], k % s.outputs, false)
                + p.bias[k % s.outputs] as f64)
                .max(0.0) as f32
        })
        .collect();
    assert!(rel_l2(&y, &want) < 1e-6);

    let q = b
        .dense_quotient(
            s,
            HEADS,
            &a,
            &w,
            BiasMode::Full,
            Stabilizer::ZeroTo(1e-7),
            &r,
        )
        .unwrap();
    let want: Vec<f32> = (0..r.len())
        .map(|k| {
            let (row, j) = (k / s.outputs, k % s.outputs);
            let z = dot(&a[row / HEADS * s.inputs..], j, true) + p.bias[j] as f64;
            (r[k] as f64 / z) as f32
        })
        .collect();
    assert!(rel_l2(&q, &want) < 1e-5);

    let c = b
        .dense_transpose(s, HEADS, &q, &w, WeightSet::Positive, Some(&a))
        .unwrap();
    let want: Vec<f32> = (0..s.n * HEADS * s.inputs)
        .map(|k| {
            let (row, i) = (k / s.inputs, k % s.inputs);
            let sum: f64 = (0..s.outputs)
                .map(|j| p.weight[j * s.inputs + i].max(0.0) as f64 * q[row * s.outputs + j] as f64)
                .sum();
            (sum * a[row / HEADS * s.inputs + i] as f64) as f32
        })
        .collect();
    assert!(rel_l2(&c, &want) < 1e-5);
}

#[test]
fn relu_backward_masks() {
    let b = CpuBackend::new(Some(1)).unwrap();
    let y = vec![0.0, 1.0, 2.0];
    let mut g = vec![5.0, 5.0, -5.0, /* head 2 */ 1.0, -1.0, 1.0];
    let mut guided = g.clone();
    b.relu_backward(1, 2, &mut g, &y, Mask::Relu).unwrap();
    assert_eq!(g, vec![0.0, 5.0, -5.0, 0.0, -1.0, 1.0]);
    b.relu_backward(1, 2, &mut guided, &y, Mask::Guided)
        .unwrap();
    assert_eq!(guided, vec![0.0, 5.0, 0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn stabilizers_follow_the_spec() {
    let eps = Stabilizer::Epsilon(1e-6);
    assert_eq!(eps.apply(0.0), 1e-6);
    assert_eq!(eps.apply(-2.0), -2.0 - 1e-6);
    let zero = Stabilizer::ZeroTo(1e-7);
    assert_eq!(zero.apply(0.0), 1e-7);
    assert_eq!(zero.apply(-3.0), -3.0);
}
