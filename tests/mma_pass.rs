//! The relevance pass on the tensor-core kernels, in the CPU emulator: a backend that runs every
//! conv and dense op through `conv_mma_*` / `dense_mma_*` (f32 as 3×TF32, tf32, bf16 with bf16
//! activations) against the CPU reference, at each precision's bound (docs/numerics.md §Bounds).

mod common;
mod emu;
mod twins;

use sglrp::backend::cuda::GpuBackend;
use sglrp::backend::cuda::mma::{self, Storage};
use sglrp::backend::cuda::registry::Variant;
use sglrp::backend::{Backend, PoolShape, Precision};
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::Model;

const SEED: u64 = 0x3a3a_0006;

fn tensor_cores(precision: Precision) -> GpuBackend<emu::EmuDevice> {
    let mut b = emu::backend();
    b.set_variant(Variant::Mma);
    assert_eq!(b.set_precision(precision), None, "{precision}: no fallback");
    b
}

#[test]
fn the_fused_pass_on_tensor_cores_meets_each_precision() {
    for precision in Precision::ALL {
        for (seed, pool_first) in [(SEED + 1, false), (SEED + 2, true)] {
            let model = twins::random_model(seed, pool_first);
            twins::fused_network(tensor_cores(precision), &model, seed, precision.bound());
        }
    }
}

#[test]
fn small_networks_on_tensor_cores_verify_at_each_precision() {
    use sglrp::verify::{VerifyOptions, verify};
    let model = Model::load(common::fixtures().join("odd_vgg.model.safetensors")).unwrap();
    let side = model.input_side;
    let pixels = common::Rng::new(SEED + 3).vec(2 * side * side * 3, 0.0, 255.0);
    let x = model.preprocess.normalize(&pixels);
    for precision in Precision::ALL {
        let options = VerifyOptions {
            methods: Method::PAPER.to_vec(),
            targets: vec![Target::Rank(1), Target::Class(2)],
            ..VerifyOptions::for_precision(precision)
        };
        let report = verify(&model, tensor_cores(precision), twins::cpu(), &x, &options).unwrap();
        assert!(report.passed(), "{precision}:\n{}", report.to_markdown());
    }
}

#[test]
fn gradients_on_tensor_cores_match_the_cpu_in_f32() {
    let model = Model::load(common::fixtures().join("small_vgg.model.safetensors")).unwrap();
    twins::gradients(tensor_cores(Precision::F32), &model, 2, SEED + 4);
}

/// Which kernels a pass launched.
fn launches(precision: Precision) -> Vec<&'static str> {
    let model = twins::random_wide_model(SEED + 5);
    let net = Network::new(tensor_cores(precision), &model).unwrap();
    let x = vec![0.5; model.input_side * model.input_side * 3];
    let request = [Request::new(Method::Sglrp, Target::Rank(1))];
    if let Err(e) = net.explain_each(&x, &request, Preset::Zennit) {
        panic!("{precision}: {e}");
    }
    net.backend().device().launches.borrow().clone()
}

#[test]
fn each_precision_launches_its_own_tensor_core_kernels() {
    for (precision, math) in [
        (Precision::F32, "tf32x3"),
        (Precision::Tf32, "tf32"),
        (Precision::Bf16, "bf16"),
    ] {
        let launched = launches(precision);
        for op in [
            "conv_mma_dual",
            "conv_mma_t",
            "dense_mma_dual",
            "dense_mma_t",
        ] {
            assert!(
                launched.iter().any(|k| k.starts_with(op)
                    && k.contains(&format!("_{math}"))
                    && (math != "tf32" || !k.contains("tf32x3"))),
                "{precision}: no {op}_{math} in {launched:?}"
            );
        }
        // The SIMT conv kernels do not run; the first conv's z^B quotient stays SIMT (f32).
        assert!(!launched.contains(&"conv3x3_dual") && !launched.contains(&"conv_transpose"));
        let converted = launched.contains(&"to_f32");
        assert_eq!(converted, precision == Precision::Bf16, "{launched:?}");
    }
}

#[test]
fn bf16_buffers_reach_the_f32_ops_converted() {
    let b = tensor_cores(Precision::Bf16);
    let cpu = twins::cpu();
    let s = PoolShape {
        n: 2,
        h: 5,
        w: 7,
        c: 3,
    };
    let x = common::Rng::new(SEED + 6).vec(s.input_len(), -2.0, 2.0);
    let xb = mma::upload(&b, &x, Storage::Bf16).unwrap();
    assert_eq!(xb.storage(), Storage::Bf16);
    let rounded = b.download(&xb).unwrap();
    let (y, _) = b.maxpool_forward(s, &xb).unwrap();
    let (want, _) = cpu
        .maxpool_forward(s, &cpu.upload(&rounded).unwrap())
        .unwrap();
    assert_eq!(b.download(&y).unwrap(), cpu.download(&want).unwrap());
    // Rounding on the way in is to nearest even, as the host's encoding.
    assert!(
        rounded
            .iter()
            .zip(&x)
            .all(|(r, v)| (r - v).abs() <= v.abs() / 256.0)
    );
}

#[test]
fn the_simt_variant_is_kept_and_named_by_the_plan() {
    let mut b = emu::backend();
    assert_eq!(
        b.variant(),
        Variant::Simt,
        "the emulator has no tensor cores"
    );
    b.set_variant(Variant::Mma);
    b.set_precision(Precision::Bf16);
    let plan = b.kernels();
    let name = |op: &str| plan.iter().find(|k| k.op == op).unwrap().kernel.clone();
    assert_eq!(name("conv_dual"), "conv_mma_dual_bf16_{l,s}");
    assert_eq!(name("conv_quotient"), "conv_quotient");
    b.set_direct(true);
    assert_eq!(b.kernels()[0].kernel, "conv3x3_forward_v1");
}
