//! The CUDA launchers and kernels on the CPU: `kernels/*.cu` compiled by the host C++ compiler
//! through `tests/emu/cuda_emu.hpp`, driven by the real `GpuBackend` launchers, against the CPU
//! backend. Runs everywhere (a C++20 compiler is needed); what only a GPU can show is in
//! `tests/cuda_ops.rs`.

mod common;
mod emu;
mod twins;

use sglrp::backend::cuda::mma::{self, Storage};
use sglrp::backend::cuda::registry::Variant;
use sglrp::backend::{Backend, ConvShape, Precision, WeightSet};
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::{ConvParams, Model};

const SEED: u64 = 0x5eed_0005;

/// The emulator backend without CUDA graphs: each pass's kernels and ranges appear once, as
/// launched (a captured pass runs once directly, then once into its graph).
fn one_by_one() -> sglrp::backend::cuda::GpuBackend<emu::EmuDevice> {
    let mut b = emu::backend();
    b.set_graphs(false);
    b
}

#[test]
fn conv_forward_matches_the_cpu() {
    twins::conv_forward(&emu::backend(), SEED);
}

#[test]
fn conv_forward_v1_matches_the_cpu() {
    let mut b = emu::backend();
    b.set_direct(true);
    twins::conv_forward(&b, SEED);
    assert!(b.device().launches.borrow().contains(&"conv3x3_forward_v1"));
}

#[test]
fn heads_match_the_cpu() {
    twins::heads(&emu::backend(), SEED + 16);
}

#[test]
fn heatmap_matches_the_cpu() {
    twins::heatmap(&emu::backend(), SEED + 17);
}

#[test]
fn conv_quotient_matches_the_cpu() {
    twins::conv_quotient(&emu::backend(), SEED + 1);
}

#[test]
fn conv_quotient_v1_matches_the_cpu() {
    let mut b = emu::backend();
    b.set_direct(true);
    twins::conv_quotient(&b, SEED + 1);
}

#[test]
fn conv_transpose_matches_the_cpu() {
    twins::conv_transpose(&emu::backend(), SEED + 2);
}

#[test]
fn conv_transpose_v1_matches_the_cpu() {
    let mut b = emu::backend();
    b.set_direct(true);
    twins::conv_transpose(&b, SEED + 2);
    // The checkers stay independent of the narrow kernel, for narrow layers too.
    let launches = b.device().launches.borrow();
    assert!(!launches.contains(&"conv_transpose_narrow"), "{launches:?}");
}

#[test]
fn narrow_conv_transpose_matches_the_cpu() {
    for variant in [Variant::Simt, Variant::Mma] {
        let mut b = emu::backend();
        b.set_variant(variant);
        let calls = twins::conv_transpose_narrow(&b, SEED + 16);
        let launches = b.device().launches.borrow();
        let narrow = launches
            .iter()
            .filter(|k| **k == "conv_transpose_narrow")
            .count();
        assert_eq!(narrow, calls, "{variant:?}: {launches:?}");
        assert!(
            !launches
                .iter()
                .any(|k| *k == "conv_transpose" || k.starts_with("conv_mma_t")),
            "{variant:?}: {launches:?}"
        );
    }
}

/// On integer-valued operands every sum is exact whatever its order, so the narrow kernel must
/// equal the CPU bit for bit: a wrong tap, halo or channel index shows as a mismatch.
#[test]
fn narrow_conv_transpose_is_exact_on_integers() {
    let cpu = twins::cpu();
    let b = emu::backend();
    let mut rng = common::Rng::new(SEED + 19);
    let mut ints = |len: usize, lo: f32, hi: f32| -> Vec<f32> {
        rng.vec(len, lo, hi).into_iter().map(f32::round).collect()
    };
    for (cin, cout, h, w) in [(6, 64, 13, 29), (3, 70, 7, 7), (8, 5, 37, 9), (1, 17, 1, 1)] {
        let s = ConvShape {
            n: 2,
            h,
            w,
            cin,
            cout,
        };
        let p = ConvParams {
            cin,
            cout,
            weight: ints(9 * cin * cout, -3.0, 3.0),
            bias: vec![0.0; cout],
        };
        let heads = 3;
        let g = ints(s.output_len() * heads, -4.0, 4.0);
        let act = ints(s.input_len(), 0.0, 3.0);
        let (cw, bw) = (cpu.prepare_conv(&p).unwrap(), b.prepare_conv(&p).unwrap());
        let (dg, dact) = (b.upload(&g).unwrap(), b.upload(&act).unwrap());
        for set in [WeightSet::Positive, WeightSet::Plain] {
            let want = cpu
                .conv_transpose(s, heads, &g, &cw, set, Some(&act))
                .unwrap();
            let got = b
                .conv_transpose(s, heads, &dg, &bw, set, Some(&dact))
                .unwrap();
            assert_eq!(b.download(&got).unwrap(), want, "{s:?} {set:?}");
        }
    }
    assert!(
        b.device()
            .launches
            .borrow()
            .contains(&"conv_transpose_narrow")
    );
}

#[test]
fn narrow_conv_transpose_reads_bf16_relevance() {
    // Under bf16 the relevance from the layer above arrives as bf16; the narrow kernel computes
    // in f32 from the rounded values.
    let mut b = emu::backend();
    b.set_variant(Variant::Mma);
    b.set_precision(Precision::Bf16);
    let c = twins::cpu();
    let s = ConvShape {
        n: 2,
        h: 5,
        w: 9,
        cin: 6,
        cout: 19,
    };
    let mut rng = common::Rng::new(SEED + 17);
    let p = ConvParams {
        cin: s.cin,
        cout: s.cout,
        weight: rng.vec(9 * s.cin * s.cout, -1.0, 1.0),
        bias: vec![0.0; s.cout],
    };
    let (g, act) = (
        rng.vec(s.output_len() * 3, -1.0, 1.0),
        rng.vec(s.input_len(), 0.0, 1.0),
    );
    let (dg, dact) = (
        mma::upload(&b, &g, Storage::Bf16).unwrap(),
        mma::upload(&b, &act, Storage::Bf16).unwrap(),
    );
    let (g, act) = (b.download(&dg).unwrap(), b.download(&dact).unwrap());
    let cw = c.prepare_conv(&p).unwrap();
    let want = c
        .conv_transpose(s, 3, &g, &cw, WeightSet::Positive, Some(&act))
        .unwrap();
    let bw = b.prepare_conv(&p).unwrap();
    let got = b
        .conv_transpose(s, 3, &dg, &bw, WeightSet::Positive, Some(&dact))
        .unwrap();
    assert_eq!(got.storage(), Storage::F32);
    twins::assert_close("narrow bf16", SEED + 17, &b.download(&got).unwrap(), &want);
    assert!(b.device().launches.borrow().contains(&"to_f32"));
}

#[test]
fn maxpool_matches_the_cpu() {
    let b = emu::backend();
    twins::maxpool(&b, SEED + 3);
}

#[test]
fn dense_ops_match_the_cpu() {
    twins::dense(&emu::backend(), SEED + 4);
}

#[test]
fn relu_backward_matches_the_cpu() {
    twins::relu_backward(&emu::backend(), SEED + 5);
}

#[test]
fn zbox_ends_match_the_cpu() {
    twins::zbox(&emu::backend(), SEED + 9);
}

#[test]
fn dual_forwards_match_the_cpu() {
    twins::dual(&emu::backend(), SEED + 10);
}

#[test]
fn dual_forwards_v1_match_the_cpu() {
    let mut b = emu::backend();
    b.set_direct(true);
    twins::dual(&b, SEED + 10);
    assert!(b.device().launches.borrow().contains(&"conv3x3_dual_v1"));
}

#[test]
fn scaled_routing_and_heads_match_the_cpu() {
    twins::scaled(&emu::backend(), SEED + 11);
}

#[test]
fn the_fused_pass_matches_the_per_op_cpu_pass() {
    for (seed, pool_first) in [(SEED + 12, false), (SEED + 13, true)] {
        let model = twins::random_model(seed, pool_first);
        twins::fused_network(emu::backend(), &model, seed, twins::BOUND);
    }
}

#[test]
fn the_fused_pass_launches_no_quotient_kernel() {
    let model = twins::random_model(SEED + 14, false);
    let net = Network::new(one_by_one(), &model).unwrap();
    let x = vec![0.5; model.input_side * model.input_side * 3];
    net.explain_each(
        &x,
        &[Request::new(Method::Sglrp, Target::Rank(1))],
        Preset::Zennit,
    )
    .unwrap();
    let launches = net.backend().device().launches.borrow().clone();
    assert!(launches.contains(&"conv3x3_dual") && launches.contains(&"dense_dual"));
    // The first conv's z^B rule keeps its quotient; no other layer has one.
    let quotients = launches.iter().filter(|k| k.contains("quotient")).count();
    assert_eq!(quotients, 1, "{launches:?}");
}

#[test]
fn shape_errors_are_errors() {
    twins::shape_errors(&emu::backend());
}

#[test]
fn small_networks_match_the_cpu_end_to_end() {
    for (file, seed) in [("small_vgg", SEED + 6), ("odd_vgg", SEED + 7)] {
        let model =
            Model::load(common::fixtures().join(format!("{file}.model.safetensors"))).unwrap();
        twins::network(emu::backend(), &model, 2, seed, true);
        twins::gradients(emu::backend(), &model, 2, seed);
    }
}

#[test]
fn every_layer_of_every_pass_opens_a_named_range() {
    let model = Model::load(common::fixtures().join("odd_vgg.model.safetensors")).unwrap();
    let net = Network::new(one_by_one(), &model).unwrap();
    let x = vec![0.5; model.input_side * model.input_side * 3];
    net.backend().device().ranges.borrow_mut().clear();
    net.explain_each(
        &x,
        &[Request::new(Method::Sglrp, Target::Rank(1))],
        Preset::Paper,
    )
    .unwrap();
    let ranges = net.backend().device().ranges.borrow().clone();
    let names = model.layer_names();
    let mut want: Vec<(usize, String)> =
        names.iter().map(|n| (0, format!("forward/{n}"))).collect();
    want.extend(names.iter().rev().map(|n| (0, format!("relevance/{n}"))));
    assert_eq!(ranges, want);
}

#[test]
fn layer_timing_records_every_range() {
    let model = Model::load(common::fixtures().join("odd_vgg.model.safetensors")).unwrap();
    let net = Network::new(emu::backend(), &model).unwrap();
    let x = vec![0.5; model.input_side * model.input_side * 3];
    net.backend().set_layer_timing(true);
    net.classify(&x).unwrap();
    let times = net.backend().take_layer_times().unwrap();
    let names: Vec<String> = times.iter().map(|t| t.name.clone()).collect();
    let want: Vec<String> = model
        .layer_names()
        .iter()
        .map(|n| format!("forward/{n}"))
        .collect();
    assert_eq!(names, want);
    assert!(times.iter().all(|t| t.ms >= 0.0));
    assert_eq!(net.backend().name(), "emu");
}

#[test]
fn the_kernels_listed_are_the_kernels_launched() {
    let model = twins::random_wide_model(SEED + 15);
    let x = vec![0.5; model.input_side * model.input_side * 3];
    for direct in [false, true] {
        for precision in Precision::ALL {
            let mut b = emu::backend();
            b.set_direct(direct);
            b.set_precision(precision);
            let listed = b.kernels();
            let net = Network::new(b, &model).unwrap();
            // The fused pass launches every conv op of the registry (the first conv's forward,
            // the dual forwards, the z^B quotient, the transposed products) and the dense dual
            // forward and transposed product; the plain dense forward and quotient are other
            // passes' ops.
            net.explain_each(
                &x,
                &[Request::new(Method::Sglrp, Target::Rank(1))],
                Preset::Zennit,
            )
            .unwrap();
            let launches = net.backend().device().launches.borrow().clone();
            let (registry, others) = listed.split_at(listed.len() - 1);
            assert!(others[0].op.starts_with("every other op"), "{listed:?}");
            let unused = ["dense_forward", "dense_quotient"];
            for k in registry.iter().filter(|k| !unused.contains(&k.op.as_str())) {
                assert!(
                    launches.contains(&k.kernel.as_str()),
                    "{precision} direct={direct}: {} listed, not launched: {launches:?}",
                    k.kernel
                );
                assert!(
                    k.precision == precision || k.precision == Precision::F32,
                    "{k:?}"
                );
            }
            for conv in launches
                .iter()
                .filter(|k| k.starts_with("conv") || k.starts_with("dense"))
                .filter(|k| !k.ends_with("_reduce"))
            {
                assert!(
                    registry.iter().any(|k| k.kernel == *conv),
                    "{conv} launched, not listed: {listed:?}"
                );
            }
        }
    }
}
