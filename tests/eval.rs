//! The evaluation (docs/evaluation.md): occluded re-runs against full forward passes of the masked image,
//! and the masking arithmetic of `evaluate` against a direct computation.

mod common;

use common::{Rng, fixtures, rel_l2};
use sglrp::backend::cpu::CpuBackend;
use sglrp::eval::metrics::{argmax_first, patch};
use sglrp::eval::occlusion::{Occlusion, Rect};
use sglrp::eval::{EvalConfig, EvalImage, evaluate, means};
use sglrp::explain::{Method, Network, Preset, Request, Target, softmax};
use sglrp::heatmap::{HeatmapKind, heatmap};
use sglrp::model::Model;

fn net(file: &str) -> Network<CpuBackend> {
    let model = Model::load(fixtures().join(file)).unwrap();
    Network::new(CpuBackend::new(Some(2)).unwrap(), &model).unwrap()
}

fn image(net: &Network<CpuBackend>, seed: u64) -> Vec<f32> {
    let side = net.info().input_side;
    net.info()
        .preprocess
        .normalize(&Rng::new(seed).vec(side * side * 3, 0.0, 255.0))
}

fn masked(input: &[f32], side: usize, r: Rect) -> Vec<f32> {
    let mut x = input.to_vec();
    for y in r.y0..r.y1 {
        for xx in r.x0..r.x1 {
            x[(y * side + xx) * 3..][..3].fill(0.0);
        }
    }
    x
}

#[test]
fn occluded_reruns_equal_full_forward_passes() {
    for (file, seed) in [
        ("small_vgg.model.safetensors", 1),
        ("odd_vgg.model.safetensors", 2),
    ] {
        let net = net(file);
        let side = net.info().input_side;
        let images: Vec<f32> = [image(&net, seed), image(&net, seed + 10)].concat();
        let fwd = net.forward(&images).unwrap();
        let mut rng = Rng::new(seed);
        // Centres everywhere, borders and corners included, every patch size.
        let mut rects = vec![
            patch(0, 0, 9, side),
            patch(side - 1, side - 1, 5, side),
            patch(0, side - 1, 3, side),
        ];
        for _ in 0..12 {
            let (y, x) = (
                (rng.next_f32() * side as f32) as usize,
                (rng.next_f32() * side as f32) as usize,
            );
            rects.push(patch(
                y,
                x,
                [1, 3, 5, 7, 9][(rng.next_f32() * 5.0) as usize],
                side,
            ));
        }
        for i in 0..2 {
            let occluded = Occlusion::new(&net, &fwd, i)
                .unwrap()
                .logits(&rects)
                .unwrap();
            let original = &images[i * side * side * 3..][..side * side * 3];
            for (r, got) in rects.iter().zip(&occluded) {
                let want = net.classify(&masked(original, side, *r)).unwrap().remove(0);
                let err = rel_l2(got, &want);
                assert!(err < 1e-5, "{file}, image {i}, {r:?}: rel L2 {err:.2e}");
            }
        }
    }
}

#[test]
fn masking_scores_are_the_probability_drops_at_the_heatmap_maximum() {
    let net = net("small_vgg.model.safetensors");
    let side = net.info().input_side;
    let x = image(&net, 3);
    let inside = vec![false; side * side];
    let cfg = EvalConfig {
        methods: vec![Method::Sglrp, Method::Random { seed: 0 }],
        ..EvalConfig::default()
    };
    let label = 4;
    let scores = evaluate(
        &net,
        &[EvalImage {
            key: "a",
            input: &x,
            label,
            inside: &inside,
        }],
        &cfg,
    )
    .unwrap();
    let s = &scores[0];
    assert_eq!(s.methods.len(), 2);
    assert!(
        s.methods
            .iter()
            .all(|m| m.pointing.iter().all(|&v| v == 0.0)),
        "no box: no hit"
    );
    // SGLRP for the label, recomputed directly.
    let r = net
        .explain_each(
            &x,
            &[Request::new(Method::Sglrp, Target::Class(label))],
            Preset::Paper,
        )
        .unwrap();
    let top = argmax_first(&heatmap(
        &r[0].explanations[0].relevance,
        3,
        HeatmapKind::Positive,
    ));
    let p0 = softmax(&r[0].logits)[label] as f64;
    for (k, &p) in cfg.patch_sizes.iter().enumerate() {
        let z = net
            .classify(&masked(&x, side, patch(top / side, top % side, p, side)))
            .unwrap()
            .remove(0);
        let want = softmax(&z)[label] as f64 - p0;
        assert!(
            (s.methods[0].masking_label[k] - want).abs() < 1e-6,
            "p = {p}"
        );
    }
    assert_eq!(s.second, sglrp::explain::ranking(&r[0].logits)[1]);
    let mean = means(&[s.clone(), s.clone()]);
    assert_eq!(mean[0], s.methods[0]);
}
