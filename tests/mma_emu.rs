//! The tensor-core primitives of `kernels/mma.cuh` and the kernels built on them, on the CPU
//! emulator (`tests/emu/mma_emu.hpp`): the fragments of `mma.sync`, `ldmatrix` (and `.trans`)
//! and the deferral of `cp.async` against plain matrix products and the PTX ISA's rules; the
//! tf32 / bf16 roundings against an independent f64 construction.

mod common;
mod emu;

use common::Rng;
use sglrp::backend::cuda::Arg;
use sglrp::backend::cuda::Device;
use sglrp::backend::cuda::config::Geometry;

fn one_warp(threads: u32) -> Geometry {
    Geometry {
        grid: (1, 1, 1),
        block: (threads, 1, 1),
        shared_bytes: 0,
    }
}

/// Runs `kernel` on `inputs` (uploaded) and `outputs` (lengths, allocated), then `ints`;
/// returns the outputs.
fn run(kernel: &'static str, inputs: &[&[f32]], outputs: &[usize], ints: &[i32]) -> Vec<Vec<f32>> {
    let dev = emu::EmuDevice::new();
    let ins: Vec<_> = inputs.iter().map(|h| dev.upload(h).unwrap()).collect();
    let outs: Vec<_> = outputs.iter().map(|&n| dev.alloc(n).unwrap()).collect();
    let mut args: Vec<Arg> = ins
        .iter()
        .chain(&outs)
        .map(|m| Arg::Ptr(dev.ptr(m)))
        .collect();
    args.extend(ints.iter().map(|&v| Arg::I32(v)));
    // SAFETY: the probes of tests/emu/mma_probe.cu take these pointers and ints, and read and
    // write the fixed sizes allocated here.
    unsafe { dev.launch(kernel, one_warp(32), &args).unwrap() };
    outs.iter()
        .zip(outputs)
        .map(|(m, &n)| dev.download(m, n).unwrap())
        .collect()
}

/// Integers in [-8, 8] times 2^e, e in [-3, 3]: exact in tf32 and bf16, every sum exact.
fn exact_values(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let int = (rng.range(0.0, 17.0) as i32 - 8) as f32;
            int * 2f32.powi(rng.range(0.0, 7.0) as i32 - 3)
        })
        .collect()
}

/// C + A·B in f64, rounded once: A (m×k) and B (k×n) row-major.
fn product(a: &[f32], b: &[f32], c: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f32> {
    (0..m * n)
        .map(|e| {
            let (r, col) = (e / n, e % n);
            let s: f64 = (0..k)
                .map(|i| a[r * k + i] as f64 * b[i * n + col] as f64)
                .sum();
            (s + c.map_or(0.0, |c| c[e] as f64)) as f32
        })
        .collect()
}

/// Round to `bits` mantissa bits in f64 arithmetic: ties away from zero or to even.
fn round_mantissa(x: f32, bits: i32, ties_even: bool) -> f32 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let v = x.abs() as f64;
    let scale = 2f64.powi(v.log2().floor() as i32 - bits);
    let q = v / scale;
    let r = if ties_even {
        q.round_ties_even()
    } else {
        (q + 0.5).floor()
    };
    (r * scale).copysign(x as f64) as f32
}

fn tf32(x: f32) -> f32 {
    round_mantissa(x, 10, false)
}

fn bf16(x: f32) -> f32 {
    round_mantissa(x, 7, true)
}

#[test]
fn mma_tf32_fragments_give_the_product() {
    let mut rng = Rng::new(0x3a01);
    let (a, b, c) = (
        exact_values(&mut rng, 128),
        exact_values(&mut rng, 64),
        exact_values(&mut rng, 128),
    );
    let d = run("probe_mma_tf32", &[&a, &b, &c], &[128], &[]);
    assert_eq!(d[0], product(&a, &b, Some(&c), 16, 8, 8));
    // Operands that tf32 rounds: the product of the rounded operands.
    let (a, b) = (rng.vec(128, -1.0, 1.0), rng.vec(64, -1.0, 1.0));
    let c = vec![0.0; 128];
    let d = run("probe_mma_tf32", &[&a, &b, &c], &[128], &[]);
    let (ra, rb): (Vec<f32>, Vec<f32>) = (
        a.iter().map(|&v| tf32(v)).collect(),
        b.iter().map(|&v| tf32(v)).collect(),
    );
    assert_eq!(d[0], product(&ra, &rb, None, 16, 8, 8));
    assert_ne!(
        d[0],
        product(&a, &b, None, 16, 8, 8),
        "the operands were not rounded"
    );
}

#[test]
fn mma_bf16_fragments_give_the_product() {
    let mut rng = Rng::new(0x3a02);
    let (a, b, c) = (
        exact_values(&mut rng, 256),
        exact_values(&mut rng, 128),
        exact_values(&mut rng, 128),
    );
    let d = run("probe_mma_bf16", &[&a, &b, &c], &[128], &[]);
    assert_eq!(d[0], product(&a, &b, Some(&c), 16, 16, 8));
    let (a, b) = (rng.vec(256, -1.0, 1.0), rng.vec(128, -1.0, 1.0));
    let c = vec![0.0; 128];
    let d = run("probe_mma_bf16", &[&a, &b, &c], &[128], &[]);
    let (ra, rb): (Vec<f32>, Vec<f32>) = (
        a.iter().map(|&v| bf16(v)).collect(),
        b.iter().map(|&v| bf16(v)).collect(),
    );
    assert_eq!(d[0], product(&ra, &rb, None, 16, 16, 8));
}

#[test]
fn ldmatrix_fragments_feed_the_mma() {
    let mut rng = Rng::new(0x3a03);
    let (a, b) = (exact_values(&mut rng, 256), exact_values(&mut rng, 256));
    let want = product(&a, &b, None, 16, 16, 16);
    for trans in [0, 1] {
        let d = run("probe_ldmatrix_bf16", &[&a, &b], &[256], &[trans]);
        assert_eq!(d[0], want, "ldmatrix trans={trans}");
    }
    let (a, b) = (exact_values(&mut rng, 128), exact_values(&mut rng, 128));
    let d = run("probe_ldmatrix_tf32", &[&a, &b], &[256], &[]);
    assert_eq!(d[0], product(&a, &b, None, 16, 8, 16));
}

#[test]
fn cp_async_lands_at_its_wait_group() {
    let src: Vec<f32> = (0..256).map(|i| i as f32 + 0.5).collect();
    let out = &run("probe_cp_async", &[&src], &[768], &[])[0];
    let (before, after1, after0) = (&out[..256], &out[256..512], &out[512..]);
    assert!(
        before.iter().all(|v| v.is_nan()),
        "a copy landed before any wait"
    );
    assert_eq!(
        &after1[..128],
        &src[..128],
        "wait_group 1 retires the first group"
    );
    assert!(
        after1[128..].iter().all(|v| v.is_nan()),
        "the second group landed early"
    );
    for i in 0..128 {
        let zero_filled = (i / 4) % 2 == 1;
        let want = if zero_filled { 0.0 } else { src[128 + i] };
        assert_eq!(after0[128 + i], want, "word {i} of the second group");
    }
    assert_eq!(&after0[..128], &src[..128]);
}

#[test]
fn tf32_and_bf16_round_as_the_hardware() {
    let mut x = vec![
        1.0 + 2f32.powi(-11), // tf32 tie: away from zero
        -(1.0 + 2f32.powi(-11)),
        1.0 + 3.0 * 2f32.powi(-11), // tf32 tie: away (up)
        1.0 + 2f32.powi(-8),        // bf16 tie: to even (down)
        1.0 + 3.0 * 2f32.powi(-8),  // bf16 tie: to even (up)
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let mut rng = Rng::new(0x3a04);
    x.extend(rng.vec(500, -1e3, 1e3));
    let n = x.len();
    let out = run("probe_round", &[&x], &[n, 2 * n], &[n as i32]);
    for (i, &v) in x.iter().enumerate() {
        if v.abs() < f32::MIN_POSITIVE && v != 0.0 {
            continue; // subnormals: not produced by the kernels' data, not modelled here
        }
        let want_tf32 = if v.abs() == f32::MAX {
            f32::INFINITY
        } else {
            tf32(v)
        };
        let want_bf16 = if v.abs() == f32::MAX {
            f32::INFINITY
        } else {
            bf16(v)
        };
        assert_eq!(
            out[0][i].to_bits(),
            want_tf32.copysign(v).to_bits(),
            "tf32({v:e})"
        );
        assert_eq!(
            out[1][2 * i].to_bits(),
            want_bf16.copysign(v).to_bits(),
            "bf16({v:e})"
        );
        assert_eq!(
            out[1][2 * i + 1].to_bits(),
            (-want_bf16.copysign(v)).to_bits(),
            "bf16(-{v:e})"
        );
    }
    assert_eq!(out[0][0], 1.0 + 2f32.powi(-10));
    assert_eq!(out[1][6], 1.0);
    assert_eq!(out[1][8], 1.0 + 2f32.powi(-6));
}

// ---- The tensor-core kernels against the CPU backend ----

use sglrp::backend::cpu::CpuBackend;
use sglrp::backend::cuda::config::MmaMath;
use sglrp::backend::cuda::mma::{self, MmaConv, MmaDense, Output, Storage, ZPlus};
use sglrp::backend::{Backend, BiasMode, ConvShape, DenseShape, Stabilizer, WeightSet};
use sglrp::model::{ConvParams, DenseParams};

/// Integers in [-8, 8] times 2^e, e in [-2, 2]: exact in bf16, and every sum of up to a few
/// hundred products exact in f32, in any order.
fn exact_operands(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let int = (rng.range(0.0, 17.0) as i32 - 8) as f32;
            int * 2f32.powi(rng.range(0.0, 5.0) as i32 - 2)
        })
        .collect()
}

/// Operand data: exact (bit-for-bit comparison), exact for the CPU but a hair below for the
/// kernels' GEMM operands (v·(1 − 2⁻¹⁴), which only rounding to nearest brings back: tf32 and
/// bf16 conversions are checked bit for bit), or uniform (precision bounds).
#[derive(Clone, Copy, PartialEq)]
enum Data {
    Exact,
    Perturbed,
    Random,
}

/// The kernels' copy of a GEMM operand.
fn device_copy(data: Data, v: &[f32]) -> Vec<f32> {
    match data {
        Data::Perturbed => v.iter().map(|x| x * (1.0 - 2f32.powi(-14))).collect(),
        _ => v.to_vec(),
    }
}

fn operands(rng: &mut Rng, data: Data, len: usize, lo: f32) -> Vec<f32> {
    match data {
        Data::Exact | Data::Perturbed => exact_operands(rng, len)
            .into_iter()
            .map(|v| if lo >= 0.0 { v.abs() } else { v })
            .collect(),
        Data::Random => rng.vec(len, lo, 1.0),
    }
}

fn storage(math: MmaMath) -> Storage {
    Storage::of(math)
}

/// The bound on the relative L2 error of random data, per math (docs/gpu.md §Tensor cores; 3×TF32
/// is checked near its real accuracy so that a dropped term shows).
fn bound(math: MmaMath) -> f64 {
    match math {
        MmaMath::Tf32 => 2e-3,
        MmaMath::Bf16 => 1.5e-2,
        MmaMath::Tf32x3 => 1e-5,
    }
}

/// `got` against the CPU's `want`: bit for bit (rounded to the output's storage) for exact data,
/// within the math's bound otherwise.
fn compare(what: &str, math: MmaMath, data: Data, out: Storage, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    match data {
        Data::Exact | Data::Perturbed => {
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let w = match out {
                    Storage::F32 => *w,
                    Storage::Bf16 => f32::from_bits((mma::bf16_bits(*w) as u32) << 16),
                };
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{what} {math:?}: element {i}: {g} != {w}"
                );
            }
        }
        Data::Random => {
            let e = common::rel_l2(got, want);
            assert!(
                e <= bound(math),
                "{what} {math:?}: relative L2 {e:e} > {:e}",
                bound(math)
            );
        }
    }
}

struct ConvCase {
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    heads: usize,
}

const CONV_CASES: [ConvCase; 4] = [
    ConvCase {
        n: 2,
        h: 7,
        w: 7,
        cin: 3,
        cout: 20,
        heads: 2,
    }, // the RGB input, K = 27
    ConvCase {
        n: 3,
        h: 1,
        w: 1,
        cin: 16,
        cout: 8,
        heads: 1,
    }, // 1×1 maps
    ConvCase {
        n: 1,
        h: 5,
        w: 6,
        cin: 24,
        cout: 70,
        heads: 3,
    }, // tails in M, N and K
    ConvCase {
        n: 2,
        h: 7,
        w: 7,
        cin: 12,
        cout: 33,
        heads: 2,
    }, // bf16: plain A loads
];

fn conv_params(rng: &mut Rng, data: Data, cin: usize, cout: usize) -> ConvParams {
    ConvParams {
        cin,
        cout,
        weight: operands(rng, data, 9 * cin * cout, -1.0),
        bias: operands(rng, data, cout, -1.0),
    }
}

/// conv_mma_{fwd,dual,t}: one case, one math, one tile (None: the table's).
fn check_conv(c: &ConvCase, math: MmaMath, data: Data, tile: Option<bool>, seed: u64) {
    let mut rng = Rng::new(seed);
    let cpu = CpuBackend::new(Some(1)).unwrap();
    let b = emu::backend();
    let p = conv_params(&mut rng, data, c.cin, c.cout);
    let s = ConvShape {
        n: c.n,
        h: c.h,
        w: c.w,
        cin: c.cin,
        cout: c.cout,
    };
    let p_dev = ConvParams {
        weight: device_copy(data, &p.weight),
        ..p.clone()
    };
    let mut w = MmaConv::new(&b, &b.prepare_conv(&p_dev).unwrap(), math).unwrap();
    w.tile = tile;
    let cw = cpu.prepare_conv(&p).unwrap();
    // The RGB input stays f32 (bf16 kernels convert it); other inputs in the math's storage.
    let input = if c.cin == 3 {
        Storage::F32
    } else {
        storage(math)
    };
    let out = if c.cin == 3 {
        Storage::F32
    } else {
        storage(math)
    };
    let x = operands(&mut rng, data, s.input_len(), 0.0);
    let x_dev = mma::upload(&b, &device_copy(data, &x), input).unwrap();
    let x_cpu = cpu.upload(&x).unwrap();
    let hw = (c.h, c.w);

    // Forward: relu(conv + b).
    let want_y = cpu
        .download(&cpu.conv3x3_forward(s, &x_cpu, &cw).unwrap())
        .unwrap();
    let y = mma::conv_fwd(&b, &w, c.n, hw, &x_dev, Output::Hidden, out).unwrap();
    compare(
        "conv fwd",
        math,
        data,
        out,
        &mma::download(&b, &y).unwrap(),
        &want_y,
    );

    // Dual: a′ = relu(z), q = a′ / stab(z⁺): the CPU quotient of a′ by z⁺.
    for (bias, stab) in [
        (BiasMode::Positive, Stabilizer::Epsilon(1e-6)),
        (BiasMode::Full, Stabilizer::ZeroTo(1.0)),
        (BiasMode::None, Stabilizer::Epsilon(0.25)),
    ] {
        let zplus = ZPlus { bias, stab };
        let (a, q) = mma::conv_dual(&b, &w, c.n, hw, &x_dev, Output::Hidden, zplus, out).unwrap();
        compare(
            "conv dual a′",
            math,
            data,
            out,
            &mma::download(&b, &a).unwrap(),
            &want_y,
        );
        let r = cpu.upload(&want_y).unwrap();
        let want_q = cpu
            .conv_quotient(s, 1, &x_cpu, &cw, WeightSet::Positive, bias, stab, &r)
            .unwrap();
        let want_q = cpu.download(&want_q).unwrap();
        if data != Data::Random || bias != BiasMode::Full {
            compare(
                "conv dual q",
                math,
                data,
                out,
                &mma::download(&b, &q).unwrap(),
                &want_q,
            );
        }
    }

    // Transposed: conv3x3ᵀ(g, W_set) times the multiplier of each row's image, K heads.
    let rows = c.n * c.heads;
    let ts = ConvShape { n: rows, ..s };
    let g = operands(&mut rng, data, rows * c.h * c.w * c.cout, -1.0);
    let mul = operands(&mut rng, data, s.input_len(), 0.0);
    let (g_dev, mul_dev) = (
        mma::upload(&b, &device_copy(data, &g), storage(math)).unwrap(),
        mma::upload(&b, &mul, storage(math)).unwrap(),
    );
    let (g_cpu, mul_cpu) = (cpu.upload(&g).unwrap(), cpu.upload(&mul).unwrap());
    for (set, with_mul) in [(WeightSet::Positive, true), (WeightSet::Plain, false)] {
        let m = with_mul.then_some(&mul_dev);
        let got = mma::conv_t(&b, &w, set, (rows, c.heads), hw, &g_dev, m, out).unwrap();
        let want = cpu
            .conv_transpose(ts, c.heads, &g_cpu, &cw, set, with_mul.then_some(&mul_cpu))
            .unwrap();
        let want = cpu.download(&want).unwrap();
        compare(
            "conv t",
            math,
            data,
            out,
            &mma::download(&b, &got).unwrap(),
            &want,
        );
    }
}

#[test]
fn conv_mma_is_exact_on_exact_operands() {
    for math in MmaMath::ALL {
        for (i, c) in CONV_CASES.iter().enumerate() {
            check_conv(c, math, Data::Exact, None, 0x4c00 + i as u64);
        }
    }
}

#[test]
fn conv_mma_rounds_its_operands_to_nearest() {
    // 3×TF32 keeps the perturbation (its small parts): only the rounding maths are bit-exact here.
    for math in [MmaMath::Tf32, MmaMath::Bf16] {
        check_conv(&CONV_CASES[0], math, Data::Perturbed, None, 0x4c30);
        check_conv(&CONV_CASES[2], math, Data::Perturbed, None, 0x4c31);
    }
}

#[test]
fn conv_mma_large_tiles_are_exact_on_exact_operands() {
    let c = ConvCase {
        n: 2,
        h: 9,
        w: 8,
        cin: 8,
        cout: 136,
        heads: 2,
    };
    for math in MmaMath::ALL {
        check_conv(&c, math, Data::Exact, Some(true), 0x4c10);
    }
}

#[test]
fn conv_mma_meets_each_precision_on_random_data() {
    for math in MmaMath::ALL {
        check_conv(&CONV_CASES[2], math, Data::Random, None, 0x4c20);
        check_conv(&CONV_CASES[0], math, Data::Random, None, 0x4c21);
    }
}

fn dense_params(rng: &mut Rng, data: Data, inputs: usize, outputs: usize) -> DenseParams {
    DenseParams {
        inputs,
        outputs,
        weight: operands(rng, data, inputs * outputs, -1.0),
        bias: operands(rng, data, outputs, -1.0),
    }
}

/// dense_mma_{fwd,dual,t} (and the split-k reductions when `slices` splits).
fn check_dense(
    (n, inputs, outputs, heads): (usize, usize, usize, usize),
    math: MmaMath,
    data: Data,
    slices: Option<u32>,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let cpu = CpuBackend::new(Some(1)).unwrap();
    let b = emu::backend();
    let p = dense_params(&mut rng, data, inputs, outputs);
    let s = DenseShape { n, inputs, outputs };
    let w = MmaDense::new(&b, &b.prepare_dense(&p).unwrap(), math).unwrap();
    let cw = cpu.prepare_dense(&p).unwrap();
    let st = storage(math);
    let x = operands(&mut rng, data, n * inputs, 0.0);
    let x_dev = mma::upload(&b, &x, st).unwrap();
    let x_cpu = cpu.upload(&x).unwrap();
    for output in [Output::Hidden, Output::Logits] {
        let relu = output == Output::Hidden;
        let want_y = cpu
            .download(&cpu.dense_forward(s, &x_cpu, &cw, relu).unwrap())
            .unwrap();
        let y = mma::dense_fwd(&b, &w, n, &x_dev, output, st, slices).unwrap();
        compare(
            "dense fwd",
            math,
            data,
            st,
            &mma::download(&b, &y).unwrap(),
            &want_y,
        );
        let stab = Stabilizer::Epsilon(1e-6);
        let zplus = ZPlus {
            bias: BiasMode::Positive,
            stab,
        };
        let (a, q) = mma::dense_dual(&b, &w, n, &x_dev, output, zplus, st, slices).unwrap();
        compare(
            "dense dual a′",
            math,
            data,
            st,
            &mma::download(&b, &a).unwrap(),
            &want_y,
        );
        // q = a′ / stab(z⁺), or 1 / stab(z⁺) for the logits.
        let r = if relu {
            want_y.clone()
        } else {
            vec![1.0; want_y.len()]
        };
        let r = cpu.upload(&r).unwrap();
        let want_q = cpu
            .dense_quotient(s, 1, &x_cpu, &cw, BiasMode::Positive, stab, &r)
            .unwrap();
        let want_q = cpu.download(&want_q).unwrap();
        compare(
            "dense dual q",
            math,
            data,
            st,
            &mma::download(&b, &q).unwrap(),
            &want_q,
        );
    }
    let rows = n * heads;
    let ts = DenseShape { n: rows, ..s };
    let g = operands(&mut rng, data, rows * outputs, -1.0);
    let mul = operands(&mut rng, data, n * inputs, 0.0);
    let (g_dev, mul_dev) = (
        mma::upload(&b, &g, st).unwrap(),
        mma::upload(&b, &mul, st).unwrap(),
    );
    let (g_cpu, mul_cpu) = (cpu.upload(&g).unwrap(), cpu.upload(&mul).unwrap());
    for (set, with_mul) in [(WeightSet::Positive, true), (WeightSet::Plain, false)] {
        let m = with_mul.then_some(&mul_dev);
        let got = mma::dense_t(&b, &w, set, (rows, heads), &g_dev, m, st, slices).unwrap();
        let want = cpu
            .dense_transpose(ts, heads, &g_cpu, &cw, set, with_mul.then_some(&mul_cpu))
            .unwrap();
        let want = cpu.download(&want).unwrap();
        compare(
            "dense t",
            math,
            data,
            st,
            &mma::download(&b, &got).unwrap(),
            &want,
        );
    }
}

const DENSE_CASES: [(usize, usize, usize, usize); 3] = [
    (5, 37, 40, 2),  // odd width: plain A loads; tails everywhere
    (3, 200, 70, 3), // 16-byte loads, N over one tile
    (1, 8, 3, 1),    // one row, K under one stage
];

#[test]
fn dense_mma_is_exact_on_exact_operands_split_or_not() {
    for math in MmaMath::ALL {
        for (i, &c) in DENSE_CASES.iter().enumerate() {
            check_dense(c, math, Data::Exact, Some(1), 0xd000 + i as u64);
            check_dense(c, math, Data::Exact, None, 0xd010 + i as u64);
        }
    }
}

#[test]
fn dense_mma_meets_each_precision_on_random_data() {
    for math in MmaMath::ALL {
        check_dense(DENSE_CASES[1], math, Data::Random, None, 0xd020);
        check_dense(DENSE_CASES[0], math, Data::Random, Some(1), 0xd021);
    }
}

#[test]
fn mma_launchers_refuse_bad_buffers() {
    let b = emu::backend();
    let mut rng = Rng::new(7);
    let p = conv_params(&mut rng, Data::Exact, 4, 8);
    let w = MmaConv::new(&b, &b.prepare_conv(&p).unwrap(), MmaMath::Tf32).unwrap();
    let x = mma::upload(&b, &[0.0; 10], Storage::F32).unwrap();
    let e = mma::conv_fwd(&b, &w, 1, (2, 2), &x, Output::Hidden, Storage::F32)
        .err()
        .unwrap();
    assert!(e.to_string().contains("expected 16"), "{e}");
    let x = mma::upload(&b, &[0.0; 16], Storage::Bf16).unwrap();
    let e = mma::conv_fwd(&b, &w, 1, (2, 2), &x, Output::Hidden, Storage::F32)
        .err()
        .unwrap();
    assert!(e.to_string().contains("f32 inputs"), "{e}");
    let g = mma::upload(&b, &[0.0; 3 * 4 * 8], Storage::F32).unwrap();
    let e = mma::conv_t(
        &b,
        &w,
        WeightSet::Plain,
        (3, 2),
        (2, 2),
        &g,
        None,
        Storage::F32,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("heads"), "{e}");
    let bad = ConvParams {
        weight: vec![0.0; 5],
        ..p
    };
    assert!(b.prepare_conv(&bad).is_err());
}
