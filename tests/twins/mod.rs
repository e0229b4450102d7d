//! Every CUDA op against its CPU twin, written once for any backend: `tests/cuda_ops.rs` runs
//! these on a GPU, `tests/cuda_emu.rs` on the kernels compiled for the CPU. Shapes are odd and
//! not multiples of any tile; inputs are seeded, and a failure names the seed and the case.
#![allow(dead_code)]

use sglrp::backend::cpu::CpuBackend;
use sglrp::backend::{
    Backend, BiasMode, ConvShape, DenseShape, HeadRule, HeadSpec, HeadTarget, Mask, PoolShape,
    Stabilizer, WeightSet, head_table, resolve_target,
};
use sglrp::heatmap::HeatmapKind;
use sglrp::model::{ConvParams, DenseParams};

use crate::common::{Rng, max_abs, rel_l2};

/// docs/numerics.md §Bounds: CUDA f32 against the CPU reference.
pub const BOUND: f64 = 1e-4;

/// Conv shapes: smaller than one tile; several tiles in every direction with ragged edges
/// (13·11 positions, K = 9·70 = 630 = 39·16 + 6, 33 channels); more channels than one tile.
pub const CONV_SHAPES: [ConvShape; 4] = [
    ConvShape {
        n: 2,
        h: 7,
        w: 5,
        cin: 3,
        cout: 5,
    },
    ConvShape {
        n: 2,
        h: 13,
        w: 11,
        cin: 70,
        cout: 33,
    },
    ConvShape {
        n: 1,
        h: 9,
        w: 8,
        cin: 6,
        cout: 70,
    },
    ConvShape {
        n: 3,
        h: 3,
        w: 2,
        cin: 17,
        cout: 1,
    },
];

pub const POOL_SHAPES: [PoolShape; 3] = [
    PoolShape {
        n: 2,
        h: 7,
        w: 5,
        c: 3,
    },
    PoolShape {
        n: 1,
        h: 13,
        w: 11,
        c: 70,
    },
    PoolShape {
        n: 3,
        h: 4,
        w: 6,
        c: 1,
    },
];

pub const DENSE_SHAPES: [DenseShape; 3] = [
    DenseShape {
        n: 3,
        inputs: 1037,
        outputs: 13,
    },
    DenseShape {
        n: 10,
        inputs: 300,
        outputs: 600,
    },
    DenseShape {
        n: 1,
        inputs: 5,
        outputs: 1,
    },
];

pub const HEADS: [usize; 2] = [1, 3];

pub fn cpu() -> CpuBackend {
    CpuBackend::new(Some(2)).unwrap()
}

/// Compares a device result with the CPU's: relative L2 within docs/numerics.md §Bounds, no NaN/Inf.
pub fn assert_close(case: &str, seed: u64, got: &[f32], want: &[f32]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{case} (seed {seed}): lengths differ"
    );
    let rel = rel_l2(got, want);
    // rel_l2 is infinite, never NaN, when a value is not finite.
    if rel > BOUND {
        let first: Vec<String> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (g, w))| {
                let d = (**g as f64 - **w as f64).abs();
                d.is_nan() || d > 1e-5 + 1e-4 * w.abs() as f64
            })
            .take(5)
            .map(|(i, (g, w))| format!("[{i}] {g} vs {w}"))
            .collect();
        panic!(
            "{case} (seed {seed}): relative L2 {rel:e} > {BOUND:e}, max abs {:e}; first mismatches: {}",
            max_abs(got, want),
            first.join(", ")
        );
    }
}

fn conv_params(rng: &mut Rng, cin: usize, cout: usize) -> ConvParams {
    ConvParams {
        cin,
        cout,
        weight: rng.vec(cout * cin * 9, -1.0, 1.0),
        bias: rng.vec(cout, -0.5, 0.5),
    }
}

fn dense_params(rng: &mut Rng, s: DenseShape) -> DenseParams {
    DenseParams {
        inputs: s.inputs,
        outputs: s.outputs,
        weight: rng.vec(s.inputs * s.outputs, -1.0, 1.0),
        bias: rng.vec(s.outputs, -1.0, 1.0),
    }
}

pub fn conv_forward<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    for (i, s) in CONV_SHAPES.into_iter().enumerate() {
        let mut rng = Rng::new(seed + i as u64);
        let p = conv_params(&mut rng, s.cin, s.cout);
        let x = rng.vec(s.input_len(), -1.0, 1.0);
        let want = c
            .conv3x3_forward(s, &x, &c.prepare_conv(&p).unwrap())
            .unwrap();
        let y = b
            .conv3x3_forward(s, &b.upload(&x).unwrap(), &b.prepare_conv(&p).unwrap())
            .unwrap();
        assert_close(
            &format!("conv3x3_forward {s:?}"),
            seed,
            &b.download(&y).unwrap(),
            &want,
        );
    }
}

pub fn conv_quotient<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    for (i, s) in CONV_SHAPES.into_iter().enumerate() {
        for heads in HEADS {
            let mut rng = Rng::new(seed + 10 * i as u64 + heads as u64);
            let a = rng.vec(s.input_len(), 0.0, 1.0);
            let r = rng.vec(s.output_len() * heads, -1.0, 1.0);
            let (da, dr) = (b.upload(&a).unwrap(), b.upload(&r).unwrap());
            for set in [WeightSet::Positive, WeightSet::Plain] {
                // The rules only divide by sums of terms of one sign (z⁺, and z^B as a z⁺-shaped
                // pass): with mixed signs a quotient is ill-conditioned and no bound holds. The
                // plain set gets weights ≤ 0, so W and W⁺ differ and a mixed-up buffer shows.
                let mut p = conv_params(&mut rng, s.cin, s.cout);
                if set == WeightSet::Plain {
                    p.weight.iter_mut().for_each(|w| *w = -w.abs());
                }
                let (cw, bw) = (c.prepare_conv(&p).unwrap(), b.prepare_conv(&p).unwrap());
                for bias in [BiasMode::None, BiasMode::Positive, BiasMode::Full] {
                    for stab in [Stabilizer::Epsilon(1e-6), Stabilizer::ZeroTo(1e-7)] {
                        let want = c
                            .conv_quotient(s, heads, &a, &cw, set, bias, stab, &r)
                            .unwrap();
                        let got = b
                            .conv_quotient(s, heads, &da, &bw, set, bias, stab, &dr)
                            .unwrap();
                        assert_close(
                            &format!("conv_quotient {s:?} heads {heads} {set:?} {bias:?} {stab:?}"),
                            seed,
                            &b.download(&got).unwrap(),
                            &want,
                        );
                    }
                }
            }
        }
    }
}

pub fn conv_transpose<B: Backend>(b: &B, seed: u64) {
    for (i, s) in CONV_SHAPES.into_iter().enumerate() {
        for heads in HEADS {
            let mut rng = Rng::new(seed + 10 * i as u64 + heads as u64);
            transpose_case(b, &mut rng, s, heads, (0.0, 1.0), "conv_transpose", seed);
        }
    }
}

/// One transposed conv of shape `s` against the CPU's, for random weights, `g` and activations
/// in `act_range`: both weight sets, with and without the activation. Returns how many products
/// it compared.
fn transpose_case<B: Backend>(
    b: &B,
    rng: &mut Rng,
    s: ConvShape,
    heads: usize,
    act_range: (f32, f32),
    label: &str,
    seed: u64,
) -> usize {
    let c = cpu();
    let p = conv_params(rng, s.cin, s.cout);
    let (cw, bw) = (c.prepare_conv(&p).unwrap(), b.prepare_conv(&p).unwrap());
    let g = rng.vec(s.output_len() * heads, -1.0, 1.0);
    let act = rng.vec(s.input_len(), act_range.0, act_range.1);
    let (dg, dact) = (b.upload(&g).unwrap(), b.upload(&act).unwrap());
    for set in [WeightSet::Positive, WeightSet::Plain] {
        for with_act in [true, false] {
            let want = c
                .conv_transpose(s, heads, &g, &cw, set, with_act.then_some(&act))
                .unwrap();
            let got = b
                .conv_transpose(s, heads, &dg, &bw, set, with_act.then_some(&dact))
                .unwrap();
            assert_close(
                &format!("{label} {s:?} heads {heads} {set:?} act {with_act}"),
                seed,
                &b.download(&got).unwrap(),
                &want,
            );
        }
    }
    4
}

/// The transposed conv of narrow layers (`conv_transpose_narrow`) against the CPU: every input
/// channel count up to the kernel's 8 that matters (1, the image's 3, z^B's 6, 8), maps smaller
/// than a tile and ragged in both directions, output channels short of one slice, a multiple of
/// it and past one. Returns how many products it computed.
pub fn conv_transpose_narrow<B: Backend>(b: &B, seed: u64) -> usize {
    let mut calls = 0;
    for (i, cin) in [1, 3, 6, 8].into_iter().enumerate() {
        for (j, (h, w)) in [(1, 1), (7, 7), (13, 29), (37, 9)].into_iter().enumerate() {
            for (k, cout) in [5, 64, 70].into_iter().enumerate() {
                let s = ConvShape {
                    n: 2,
                    h,
                    w,
                    cin,
                    cout,
                };
                for heads in HEADS {
                    let case = seed + 100 * i as u64 + 10 * j as u64 + k as u64;
                    let mut rng = Rng::new(case + 1000 * heads as u64);
                    calls += transpose_case(b, &mut rng, s, heads, (-1.0, 1.0), "narrow", seed);
                }
            }
        }
    }
    calls
}

/// Pooling on values from a small set, so that windows hold ties (the first maximum wins).
pub fn maxpool<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    for (i, s) in POOL_SHAPES.into_iter().enumerate() {
        let mut rng = Rng::new(seed + i as u64);
        let x: Vec<f32> = rng
            .vec(s.input_len(), 0.0, 4.0)
            .into_iter()
            .map(f32::floor)
            .collect();
        let (want_y, want_idx) = c.maxpool_forward(s, &x).unwrap();
        let (y, idx) = b.maxpool_forward(s, &b.upload(&x).unwrap()).unwrap();
        let case = format!("maxpool_forward {s:?}");
        assert_eq!(b.download(&y).unwrap(), want_y, "{case} (seed {seed})");
        assert_eq!(
            b.download_index(&idx).unwrap(),
            want_idx,
            "{case} argmax (seed {seed})"
        );
        for heads in HEADS {
            let r = rng.vec(s.output_len() * heads, -1.0, 1.0);
            let want = c.maxpool_route(s, heads, &r, &want_idx).unwrap();
            let got = b
                .maxpool_route(s, heads, &b.upload(&r).unwrap(), &idx)
                .unwrap();
            assert_eq!(
                b.download(&got).unwrap(),
                want,
                "maxpool_route {s:?} heads {heads} (seed {seed})"
            );
        }
    }
}

pub fn dense<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    for (i, s) in DENSE_SHAPES.into_iter().enumerate() {
        let mut rng = Rng::new(seed + i as u64);
        let p = dense_params(&mut rng, s);
        let (cw, bw) = (c.prepare_dense(&p).unwrap(), b.prepare_dense(&p).unwrap());
        let x = rng.vec(s.n * s.inputs, 0.0, 1.0);
        let dx = b.upload(&x).unwrap();
        for relu in [true, false] {
            let want = c.dense_forward(s, &x, &cw, relu).unwrap();
            let got = b.dense_forward(s, &dx, &bw, relu).unwrap();
            assert_close(
                &format!("dense_forward {s:?} relu {relu}"),
                seed,
                &b.download(&got).unwrap(),
                &want,
            );
        }
        for heads in HEADS {
            let r = rng.vec(s.n * heads * s.outputs, -1.0, 1.0);
            let dr = b.upload(&r).unwrap();
            for bias in [BiasMode::None, BiasMode::Positive, BiasMode::Full] {
                for stab in [Stabilizer::Epsilon(1e-6), Stabilizer::ZeroTo(1e-7)] {
                    let want = c.dense_quotient(s, heads, &x, &cw, bias, stab, &r).unwrap();
                    let got = b
                        .dense_quotient(s, heads, &dx, &bw, bias, stab, &dr)
                        .unwrap();
                    assert_close(
                        &format!("dense_quotient {s:?} heads {heads} {bias:?} {stab:?}"),
                        seed,
                        &b.download(&got).unwrap(),
                        &want,
                    );
                }
            }
            for set in [WeightSet::Positive, WeightSet::Plain] {
                for with_act in [true, false] {
                    let want = c
                        .dense_transpose(s, heads, &r, &cw, set, with_act.then_some(&x))
                        .unwrap();
                    let got = b
                        .dense_transpose(s, heads, &dr, &bw, set, with_act.then_some(&dx))
                        .unwrap();
                    assert_close(
                        &format!("dense_transpose {s:?} heads {heads} {set:?} act {with_act}"),
                        seed,
                        &b.download(&got).unwrap(),
                        &want,
                    );
                }
            }
        }
    }
}

pub fn relu_backward<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    let mut rng = Rng::new(seed);
    for (n, map) in [(2, 7 * 5 * 3), (1, 1037), (3, 1)] {
        for heads in HEADS {
            let y: Vec<f32> = rng
                .vec(n * map, -1.0, 1.0)
                .into_iter()
                .map(|v| v.max(0.0))
                .collect();
            let g = rng.vec(n * heads * map, -1.0, 1.0);
            let dy = b.upload(&y).unwrap();
            for mask in [Mask::Relu, Mask::Guided] {
                let mut want = g.clone();
                c.relu_backward(n, heads, &mut want, &y, mask).unwrap();
                let mut got = b.upload(&g).unwrap();
                b.relu_backward(n, heads, &mut got, &dy, mask).unwrap();
                assert_eq!(
                    b.download(&got).unwrap(),
                    want,
                    "relu_backward n {n} map {map} heads {heads} {mask:?} (seed {seed})"
                );
            }
        }
    }
}

/// The z^B ends: the doubled input and the sum of halves, bit for bit (one subtraction or
/// addition per value on both backends), on odd pixel counts and channel counts.
pub fn zbox<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    let mut rng = Rng::new(seed);
    for (pixels, channels) in [(7 * 5, 3), (1037, 1), (1, 4)] {
        let x = rng.vec(pixels * channels, -150.0, 150.0);
        let bounds = rng.vec(2 * channels, -130.0, 130.0);
        let want = c.zbox_input(&x, &bounds).unwrap();
        let got = b
            .zbox_input(&b.upload(&x).unwrap(), &b.upload(&bounds).unwrap())
            .unwrap();
        let case = format!("pixels {pixels} channels {channels} (seed {seed})");
        assert_eq!(b.download(&got).unwrap(), want, "zbox_input {case}");
        let halves = rng.vec(3 * pixels * 2 * channels, -1.0, 1.0);
        let want = c.zbox_sum(&halves, channels).unwrap();
        let got = b.zbox_sum(&b.upload(&halves).unwrap(), channels).unwrap();
        assert_eq!(b.download(&got).unwrap(), want, "zbox_sum {case}");
        assert!(
            b.zbox_sum(&b.upload(&halves[1..]).unwrap(), channels)
                .is_err()
        );
    }
}

/// Shape errors come back as errors, not panics or device faults.
pub fn shape_errors<B: Backend>(b: &B) {
    let s = CONV_SHAPES[0];
    let mut rng = Rng::new(1);
    let w = b
        .prepare_conv(&conv_params(&mut rng, s.cin, s.cout))
        .unwrap();
    let short = b.upload(&vec![0.0; s.input_len() - 1]).unwrap();
    assert!(b.conv3x3_forward(s, &short, &w).is_err());
    let wrong = ConvShape {
        cin: s.cin + 1,
        ..s
    };
    let x = b.upload(&vec![0.0; wrong.input_len()]).unwrap();
    assert!(b.conv3x3_forward(wrong, &x, &w).is_err());
    let bad = ConvParams {
        cin: 2,
        cout: 2,
        weight: vec![0.0; 5],
        bias: vec![0.0; 2],
    };
    assert!(b.prepare_conv(&bad).is_err());
}

/// A whole network on `b` against the CPU: logits from each backend's own forward pass; every
/// method of every preset for several targets at once (one batch of heads) and the gradient
/// passes of the baselines from the same forward state (`Network::adopt`), through the library's
/// `verify` with its cancellation-aware bound for the signed maps. `end_to_end`: also hold the
/// maps of the device's own forward pass to the bound (small networks, where no max-pool near
/// tie or ReLU input near zero turns a rounding difference into a different path).
pub fn network<B: Backend>(
    b: B,
    model: &sglrp::model::Model,
    images: usize,
    seed: u64,
    end_to_end: bool,
) {
    use sglrp::explain::{Method, Preset, Target};
    use sglrp::verify::{VerifyOptions, verify};
    let side = model.input_side;
    let pixels = Rng::new(seed).vec(images * side * side * 3, 0.0, 255.0);
    let x = model.preprocess.normalize(&pixels);
    let options = VerifyOptions {
        presets: Preset::ALL.to_vec(),
        methods: Method::PAPER.to_vec(),
        targets: vec![Target::Rank(1), Target::Rank(2), Target::Class(3)],
        layers: false,
        ..VerifyOptions::default()
    };
    let report = verify(model, b, cpu(), &x, &options).unwrap();
    assert!(
        report.passed(),
        "{} (seed {seed}):\n{}",
        model.name,
        report.to_markdown()
    );
    assert_eq!(
        report.methods.len(),
        1 + 3 * 3,
        "logits + presets × methods"
    );
    assert_eq!(report.end_to_end.len(), 3 * 3);
    if end_to_end {
        let failed: Vec<_> = report.end_to_end.iter().filter(|c| !c.pass).collect();
        assert!(
            failed.is_empty(),
            "{} (seed {seed}): {failed:?}",
            model.name
        );
    }
}

/// The gradient passes of the baselines on `b` against the CPU, from the same forward state.
pub fn gradients<B: Backend>(b: B, model: &sglrp::model::Model, images: usize, seed: u64) {
    use sglrp::explain::{Network, Rule};
    let side = model.input_side;
    let dev = Network::new(b, model).unwrap();
    let cpu = Network::new(cpu(), model).unwrap();
    let pixels = Rng::new(seed).vec(images * side * side * 3, 0.0, 255.0);
    let x = model.preprocess.normalize(&pixels);
    let fc = cpu.forward(&x).unwrap();
    let fd = dev.adopt(&cpu, &fc).unwrap();
    let classes = cpu.num_classes();
    let heads: Vec<f32> = (0..images * 2 * classes)
        .map(|i| {
            if i % classes == (i / classes) % classes {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    for mask in [Mask::Relu, Mask::Guided] {
        let gd = dev
            .backward(&fd, 2, &heads, Rule::Gradient(mask), 0)
            .unwrap();
        let gc = cpu
            .backward(&fc, 2, &heads, Rule::Gradient(mask), 0)
            .unwrap();
        assert_close(&format!("{} gradient {mask:?}", model.name), seed, &gd, &gc);
    }
}

/// The dual forwards (a′ and q = a′ / stab(z⁺)) against the CPU, for every bias mode and
/// stabiliser; the CPU twin itself against its per-op composition (the forward, then the quotient
/// of a′ by the same denominator), bit for bit.
pub fn dual<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    let modes = [BiasMode::None, BiasMode::Positive, BiasMode::Full];
    let stabs = [Stabilizer::Epsilon(1e-6), Stabilizer::ZeroTo(1e-7)];
    for (i, s) in CONV_SHAPES.into_iter().enumerate() {
        let mut rng = Rng::new(seed + i as u64);
        let p = conv_params(&mut rng, s.cin, s.cout);
        let x = rng.vec(s.input_len(), 0.0, 1.0);
        let (cw, bw) = (c.prepare_conv(&p).unwrap(), b.prepare_conv(&p).unwrap());
        let dx = b.upload(&x).unwrap();
        for bias in modes {
            for stab in stabs {
                let case = format!("conv3x3_dual {s:?} {bias:?} {stab:?}");
                let (y, q) = c.conv3x3_dual(s, &x, &cw, bias, stab).unwrap();
                assert_eq!(y, c.conv3x3_forward(s, &x, &cw).unwrap(), "{case}");
                let per_op = c
                    .conv_quotient(s, 1, &x, &cw, WeightSet::Positive, bias, stab, &y)
                    .unwrap();
                assert_eq!(q, per_op, "{case}: CPU twin against its composition");
                let (dy, dq) = b.conv3x3_dual(s, &dx, &bw, bias, stab).unwrap();
                assert_close(&case, seed, &b.download(&dy).unwrap(), &y);
                assert_close(&case, seed, &b.download(&dq).unwrap(), &q);
            }
        }
    }
    for (i, s) in DENSE_SHAPES.into_iter().enumerate() {
        let mut rng = Rng::new(seed + 100 + i as u64);
        let p = dense_params(&mut rng, s);
        let (cw, bw) = (c.prepare_dense(&p).unwrap(), b.prepare_dense(&p).unwrap());
        let x = rng.vec(s.n * s.inputs, 0.0, 1.0);
        let dx = b.upload(&x).unwrap();
        for relu in [true, false] {
            for bias in modes {
                for stab in stabs {
                    let case = format!("dense_dual {s:?} relu {relu} {bias:?} {stab:?}");
                    let (y, q) = c.dense_dual(s, &x, &cw, relu, bias, stab).unwrap();
                    assert_eq!(y, c.dense_forward(s, &x, &cw, relu).unwrap(), "{case}");
                    let numerator = if relu { y.clone() } else { vec![1.0; y.len()] };
                    let per_op = c
                        .dense_quotient(s, 1, &x, &cw, bias, stab, &numerator)
                        .unwrap();
                    assert_eq!(q, per_op, "{case}: CPU twin against its composition");
                    let (dy, dq) = b.dense_dual(s, &dx, &bw, relu, bias, stab).unwrap();
                    assert_close(&case, seed, &b.download(&dy).unwrap(), &y);
                    assert_close(&case, seed, &b.download(&dq).unwrap(), &q);
                }
            }
        }
    }
}

/// The multiplications of the fused pass, bit for bit (one product per value on both
/// backends): routing times a map of the pool's input, and heads times their image's map; the
/// CPU twins against routing then multiplying by hand.
pub fn scaled<B: Backend>(b: &B, seed: u64) {
    let c = cpu();
    for (i, s) in POOL_SHAPES.into_iter().enumerate() {
        let mut rng = Rng::new(seed + i as u64);
        let x: Vec<f32> = rng
            .vec(s.input_len(), 0.0, 4.0)
            .into_iter()
            .map(f32::floor)
            .collect();
        let m = rng.vec(s.input_len(), -2.0, 2.0);
        let (_, idx) = c.maxpool_forward(s, &x).unwrap();
        let (_, didx) = b.maxpool_forward(s, &b.upload(&x).unwrap()).unwrap();
        let dm = b.upload(&m).unwrap();
        let map = s.input_len() / s.n;
        for heads in HEADS {
            let r = rng.vec(s.output_len() * heads, -1.0, 1.0);
            let routed = c.maxpool_route(s, heads, &r, &idx).unwrap();
            let by_hand: Vec<f32> = routed
                .iter()
                .enumerate()
                .map(|(e, v)| v * m[(e / map / heads) * map + e % map])
                .collect();
            let want = c.maxpool_route_scaled(s, heads, &r, &idx, &m).unwrap();
            let case = format!("maxpool_route_scaled {s:?} heads {heads} (seed {seed})");
            assert_eq!(want, by_hand, "{case}: CPU twin");
            let got = b
                .maxpool_route_scaled(s, heads, &b.upload(&r).unwrap(), &didx, &dm)
                .unwrap();
            assert_eq!(b.download(&got).unwrap(), want, "{case}");
            let short = b.upload(&m[1..]).unwrap();
            assert!(
                b.maxpool_route_scaled(s, heads, &b.upload(&r).unwrap(), &didx, &short)
                    .is_err()
            );
        }
    }
    let mut rng = Rng::new(seed + 50);
    for (n, map) in [(2, 7 * 5 * 3), (1, 1037), (3, 1)] {
        for heads in HEADS {
            let m = rng.vec(n * map, -2.0, 2.0);
            let r = rng.vec(n * heads * map, -1.0, 1.0);
            let by_hand: Vec<f32> = r
                .iter()
                .enumerate()
                .map(|(e, v)| v * m[(e / map / heads) * map + e % map])
                .collect();
            let want = c.scale_heads(n, heads, &r, &m).unwrap();
            let case = format!("scale_heads n {n} map {map} heads {heads} (seed {seed})");
            assert_eq!(want, by_hand, "{case}: CPU twin");
            let (dr, dm) = (b.upload(&r).unwrap(), b.upload(&m).unwrap());
            let got = b.scale_heads(n, heads, &dr, &dm).unwrap();
            assert_eq!(b.download(&got).unwrap(), want, "{case}");
            assert!(b.scale_heads(0, heads, &dr, &dm).is_err());
            let short = b.upload(&r[1..]).unwrap();
            assert!(b.scale_heads(n, heads, &short, &dm).is_err());
        }
    }
}

/// A seeded random VGG-like model with odd sizes: 11×11 input (pools floor 11 → 5 → 2), convs
/// of 3→5→4 channels, a pool, a conv 4→7, a pool, two dense layers. `pool_first` puts a pool
/// right after the first conv instead (the z^B layer then takes routed relevance).
pub fn random_model(seed: u64, pool_first: bool) -> sglrp::model::Model {
    random_model_of(seed, pool_first, 4)
}

/// [`random_model`] with 10 channels in place of its 4: a layer wider than the narrow transposed
/// kernel's 8 input channels, so that a pass launches both transposed kernels.
pub fn random_wide_model(seed: u64) -> sglrp::model::Model {
    random_model_of(seed, false, 10)
}

fn random_model_of(seed: u64, pool_first: bool, mid: usize) -> sglrp::model::Model {
    use sglrp::model::{Channels, Layer, Model, Preprocess, Resize};
    let mut rng = Rng::new(seed);
    let mut conv = |cin, cout| Layer::Conv(conv_params(&mut rng, cin, cout));
    let mut layers = if pool_first {
        vec![
            conv(3, 5),
            Layer::Pool,
            conv(5, mid),
            conv(mid, 7),
            Layer::Pool,
        ]
    } else {
        vec![
            conv(3, 5),
            conv(5, mid),
            Layer::Pool,
            conv(mid, 7),
            Layer::Pool,
        ]
    };
    let features = if pool_first { 7 } else { 2 * 2 * 7 };
    layers.push(Layer::Flatten);
    for (inputs, outputs) in [(features, 9), (9, 6)] {
        let s = DenseShape {
            n: 1,
            inputs,
            outputs,
        };
        layers.push(Layer::Dense(dense_params(&mut rng, s)));
    }
    Model {
        name: format!("random{seed}"),
        layers,
        input_side: if pool_first { 5 } else { 11 },
        preprocess: Preprocess {
            channels: Channels::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            resize: Resize::Direct,
        },
        classes: sglrp::model::Model::default_classes(6),
    }
}

/// The fused relevance pass on `b` against the readable per-op pass on the CPU (the oracle), for
/// every preset, the LRP, CLRP and SGLRP heads of several targets at once, relevance at the
/// image and at intermediate layers. The device starts from the CPU's forward state
/// (`Network::adopt`), so it computes its own quotients from the CPU's activations; on the CPU,
/// the fused pass also runs from its own forward pass, which stored the quotients. Signed maps
/// are held to `bound · κ` (docs/numerics.md §Bounds), κ from the per-op pass of |head|.
pub fn fused_network<B: Backend>(b: B, model: &sglrp::model::Model, seed: u64, bound: f64) {
    use sglrp::explain::{Formulation, Method, Network, Preset, Rule, head, innvestigate_heads};
    let images = 2;
    let side = model.input_side;
    let pixels = Rng::new(seed).vec(images * side * side * 3, 0.0, 255.0);
    let x = model.preprocess.normalize(&pixels);
    let dev = Network::new(b, model).unwrap();
    let mut oracle = Network::new(cpu(), model).unwrap();
    oracle.set_formulation(Formulation::Reference);
    let fused_cpu = Network::new(cpu(), model).unwrap();
    assert_eq!(dev.formulation(), Formulation::Fused);
    let fc = oracle.forward(&x).unwrap();
    let fd = dev.adopt(&oracle, &fc).unwrap();
    let classes = model.num_classes();
    let layers = model.layers.len();
    for preset in Preset::ALL {
        let own = fused_cpu.forward_for(&x, preset).unwrap();
        let mut heads = Vec::new();
        for z in oracle.logits(&fc).unwrap().chunks(classes) {
            for (method, target) in [
                (Method::Lrp, 0),
                (Method::Clrp, 3),
                (Method::Sglrp, 1),
                (Method::Sglrp, 5),
            ] {
                if preset.two_pass() {
                    let (t, o) = innvestigate_heads(&method, z, target);
                    heads.extend(t);
                    heads.extend(o);
                } else {
                    heads.extend(head(&method, z, target));
                }
            }
        }
        let k = heads.len() / classes / images;
        let abs: Vec<f32> = heads.iter().map(|v| v.abs()).collect();
        let rule = Rule::Relevance(preset);
        for stop in [0, 1, 3, 5, layers - 1] {
            let want = oracle.backward(&fc, k, &heads, rule, stop).unwrap();
            let terms = oracle.backward(&fc, k, &abs, rule, stop).unwrap();
            let got = dev.backward(&fd, k, &heads, rule, stop).unwrap();
            let own_got = fused_cpu.backward(&own, k, &heads, rule, stop).unwrap();
            let map = want.len() / (images * k);
            for (what, got) in [("adopted", &got), ("own forward", &own_got)] {
                let c = sglrp::verify::Comparison::signed_maps(
                    format!("{} {preset} stop {stop} {what}", model.name),
                    got,
                    &want,
                    Some(&terms),
                    map,
                    bound,
                );
                assert!(c.pass, "seed {seed}: {c:?}");
            }
        }
    }
}

/// The heads of every rule and target kind from the same logits on `b` and on the CPU: targets
/// equal, values within a few ulp (the softmax's f64 sum runs in another order). Logits with
/// ties, ±0 and values far apart; 1, 4, 37 and 1000 classes; a custom row between others.
pub fn heads<B: Backend>(b: &B, seed: u64) {
    let cpu = cpu();
    let mut rng = Rng::new(seed);
    for classes in [1usize, 4, 37, 1000] {
        let n = 3;
        let mut logits = rng.vec(n * classes, -8.0, 8.0);
        // Image 1 ties: a few repeated values, +0 and −0 (total order: −0 below +0).
        for (i, v) in logits[classes..2 * classes].iter_mut().enumerate() {
            *v = [2.5, -1.0, 0.0, -0.0, 2.5][i % 5];
        }
        let ranks = [1, classes, classes.div_ceil(2)];
        let mut specs = Vec::new();
        let custom = rng.vec(2 * classes, -1.0, 1.0);
        for _ in 0..n {
            for (r, rule) in [
                HeadRule::Lrp,
                HeadRule::Clrp,
                HeadRule::Sglrp,
                HeadRule::OneHot,
                HeadRule::Custom(1),
                HeadRule::Sglrp,
            ]
            .into_iter()
            .enumerate()
            {
                let target = if r % 2 == 0 {
                    HeadTarget::Rank(ranks[r / 2 % 3])
                } else {
                    HeadTarget::Class((r * 7) % classes)
                };
                specs.push(HeadSpec { rule, target });
            }
        }
        let case = format!("heads, {classes} classes");
        let table = head_table(&specs, &custom);
        let rows = specs.len();
        let (h, t) = b
            .heads(
                &b.upload(&logits).unwrap(),
                classes,
                rows,
                &b.upload(&table).unwrap(),
            )
            .unwrap();
        let (want_h, want_t) = cpu.heads(&logits, classes, rows, &table).unwrap();
        assert_eq!(b.download(&t).unwrap(), want_t, "{case}: targets");
        for (spec, &t) in specs.iter().zip(&want_t).take(6) {
            let z = &logits[..classes];
            assert_eq!(
                t as usize,
                resolve_target(z, spec.target),
                "{case}: {spec:?}"
            );
        }
        let got = b.download(&h).unwrap();
        for (i, (g, w)) in got.iter().zip(&want_h).enumerate() {
            let ulps = (g.to_bits() as i64 - w.to_bits() as i64).abs();
            assert!(
                g == w || ulps <= 4,
                "{case} (seed {seed}): [{i}] {g} vs {w}"
            );
        }
        // The ranks follow total_cmp with ties to the lower index.
        let z = &logits[classes..2 * classes];
        let by_rank = |k: usize| resolve_target(z, HeadTarget::Rank(k));
        if classes == 4 {
            assert_eq!((1..=4).map(by_rank).collect::<Vec<_>>(), vec![0, 2, 3, 1]);
        }
    }
    // Rows out of range become NaN rows, not reads out of bounds; a short table is an error.
    let logits = b.upload(&[1.0, 2.0]).unwrap();
    let spec = |rule, target| HeadSpec { rule, target };
    for bad in [
        spec(HeadRule::Lrp, HeadTarget::Class(2)),
        spec(HeadRule::Lrp, HeadTarget::Rank(0)),
        spec(HeadRule::Lrp, HeadTarget::Rank(3)),
        spec(HeadRule::Custom(1), HeadTarget::Rank(1)),
    ] {
        let good = spec(HeadRule::Custom(0), HeadTarget::Rank(1));
        let table = b.upload(&head_table(&[good, bad], &[0.5, 0.25])).unwrap();
        let (h, t) = b.heads(&logits, 2, 2, &table).unwrap();
        let (h, t) = (b.download(&h).unwrap(), b.download(&t).unwrap());
        assert_eq!((&h[..2], t[0]), (&[0.5, 0.25][..], 1.0), "{bad:?}");
        assert!(
            h[2..].iter().chain(&t[1..]).all(|v| v.is_nan()),
            "{bad:?}: {h:?} {t:?}"
        );
    }
    let table = b.upload(&[0.0; 7]).unwrap();
    assert!(
        b.heads(&logits, 2, 2, &table).is_err(),
        "7 words for 2 rows"
    );
    let two_images = b.upload(&[1.0; 4]).unwrap();
    let table = b.upload(&[0.0; 12]).unwrap();
    assert!(
        b.heads(&two_images, 2, 3, &table).is_err(),
        "3 rows, 2 images"
    );
}

/// The heatmap op against the CPU's and against the host heatmap of the same maps laid out
/// `(C, H, W)`: each pixel's channels summed in channel order, so the sums are equal.
pub fn heatmap<B: Backend>(b: &B, seed: u64) {
    let cpu = cpu();
    let mut rng = Rng::new(seed);
    for (rows, pixels, channels) in [(1, 1, 1), (3, 37, 3), (2, 13 * 11, 6), (1, 9, 64)] {
        let r = rng.vec(rows * pixels * channels, -1.0, 1.0);
        for kind in HeatmapKind::ALL {
            let case = format!("heatmap {kind}, {rows}×{pixels}×{channels}");
            let got = b
                .download(&b.heatmap(&b.upload(&r).unwrap(), channels, kind).unwrap())
                .unwrap();
            let want = cpu.heatmap(&r, channels, kind).unwrap();
            assert_eq!(got, want, "{case} (seed {seed})");
            for (row, map) in r.chunks(pixels * channels).enumerate() {
                let chw = sglrp::explain::hwc_to_chw(map, pixels, 1, channels);
                let host = sglrp::heatmap::heatmap(&chw, channels, kind);
                assert_eq!(&want[row * pixels..][..pixels], &host[..], "{case}");
            }
        }
    }
    assert!(
        b.heatmap(&b.upload(&[1.0; 5]).unwrap(), 2, HeatmapKind::Signed)
            .is_err()
    );
}
