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
