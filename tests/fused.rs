//! The fused z⁺ pass on the CPU (docs/method.md §Rules): its ops' CPU twins against their per-op
//! compositions, and the fused relevance pass against the readable per-op pass, the oracle, on
//! seeded random networks with odd sizes, for every preset, method and several heads.

mod common;
mod twins;

use sglrp::backend::Backend;
use sglrp::backend::Precision;
use sglrp::explain::{Formulation, Method, Network, Preset, Request, Target};

const SEED: u64 = 0x5eed_f05e;

/// CPU against CPU: only the order of one multiplication and one division differs.
const FUSED_BOUND: f64 = 1e-5;

#[test]
fn dual_forwards_equal_their_per_op_composition() {
    twins::dual(&twins::cpu(), SEED);
}

#[test]
fn scaled_routing_and_heads_equal_routing_then_multiplying() {
    twins::scaled(&twins::cpu(), SEED + 1);
}

#[test]
fn the_fused_pass_equals_the_per_op_pass() {
    for (seed, pool_first) in [(SEED + 2, false), (SEED + 3, true), (SEED + 4, false)] {
        let model = twins::random_model(seed, pool_first);
        twins::fused_network(twins::cpu(), &model, seed, FUSED_BOUND);
    }
}

#[test]
fn explanations_agree_between_formulations() {
    let model = twins::random_model(SEED + 5, false);
    let side = model.input_side;
    let x = model.preprocess.normalize(&common::Rng::new(SEED + 5).vec(
        3 * side * side * 3,
        0.0,
        255.0,
    ));
    let requests: Vec<Request> = Method::PAPER
        .into_iter()
        .map(|m| Request::new(m, Target::Rank(2)))
        .collect();
    let fused = Network::new(twins::cpu(), &model).unwrap();
    let mut per_op = Network::new(twins::cpu(), &model).unwrap();
    per_op.set_formulation(Formulation::Reference);
    for preset in Preset::ALL {
        let a = fused.explain_each(&x, &requests, preset).unwrap();
        let b = per_op.explain_each(&x, &requests, preset).unwrap();
        for (ia, ib) in a.iter().zip(&b) {
            assert_eq!(ia.logits, ib.logits);
            for (ea, eb) in ia.explanations.iter().zip(&ib.explanations) {
                assert_eq!(ea.head, eb.head);
                let norm: f64 = eb.relevance.iter().map(|v| (*v as f64).powi(2)).sum();
                let diff: f64 = ea
                    .relevance
                    .iter()
                    .zip(&eb.relevance)
                    .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
                    .sum();
                // Signed maps cancel; the per-map bound of the κ-aware check is in
                // the_fused_pass_equals_the_per_op_pass. Here: both formulations agree on
                // what a request returns, to well below the f32 bound.
                assert!(
                    diff.sqrt() <= 1e-3 * norm.sqrt().max(1e-30),
                    "{preset} {:?}: {diff:e} vs {norm:e}",
                    ea.method
                );
            }
        }
    }
}

#[test]
fn the_cpu_backend_ignores_a_precision_and_says_so_once() {
    let mut cpu = twins::cpu();
    assert_eq!(cpu.set_precision(Precision::F32), None);
    let note = cpu.set_precision(Precision::Bf16).unwrap();
    assert!(note.contains("bf16") && note.contains("f32"), "{note}");
    assert_eq!(cpu.set_precision(Precision::Tf32), None);
    assert_eq!(cpu.precision(), Precision::F32);
}

#[test]
fn precisions_parse_and_print() {
    for p in Precision::ALL {
        assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
    }
    assert_eq!("TF32".parse::<Precision>(), Ok(Precision::Tf32));
    let e = "fp16".parse::<Precision>().unwrap_err();
    assert!(e.contains("fp16") && e.contains("f32, tf32 or bf16"), "{e}");
    assert!(Precision::F32.bound() < Precision::Tf32.bound());
    assert!(Precision::Tf32.bound() < Precision::Bf16.bound());
}
