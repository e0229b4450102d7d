//! The baselines (docs/evaluation.md) against PyTorch autograd (`tests/fixtures/make_gradient_fixtures.py`,
//! float64): Gradient, Guided Backprop, Grad-CAM at the last conv and Guided Grad-CAM.

mod common;

use common::{Fixture, fixtures, nchw_to_nhwc, rel_l2};
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::Model;

#[test]
fn baselines_match_autograd() {
    let model = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let net = Network::new(CpuBackend::new(None).unwrap(), &model).unwrap();
    let fixture = Fixture::load("small_vgg.gradients.safetensors");
    let (shape, x) = fixture.get("input");
    let (n, side) = (shape[0], shape[2]);
    let input = nchw_to_nhwc(x, n, side, side);
    let (_, targets) = fixture.get("targets");
    let methods = [
        Method::Gradient,
        Method::GuidedBackprop,
        Method::GradCam,
        Method::GuidedGradCam,
    ];
    let requests: Vec<Vec<Request>> = (0..n)
        .map(|i| {
            (0..2)
                .flat_map(|j| {
                    methods
                        .clone()
                        .map(|m| Request::new(m, Target::Class(targets[i * 2 + j] as usize)))
                })
                .collect()
        })
        .collect();
    let results = net.explain(&input, &requests, Preset::Paper).unwrap();
    for (i, result) in results.iter().enumerate() {
        for (k, e) in result.explanations.iter().enumerate() {
            let slot = k / methods.len();
            let (shape, want) = fixture.get(e.method.name());
            let map: usize = shape[2..].iter().product();
            assert_eq!(e.relevance.len(), map, "{}", e.method);
            assert_eq!(e.channels * side * side, map);
            let err = rel_l2(&e.relevance, &want[(i * 2 + slot) * map..][..map]);
            assert!(
                err <= 1e-5,
                "image {i}, target {}, {}: rel L2 {err:.2e}",
                e.target,
                e.method
            );
        }
    }
}

#[test]
fn gradcam_layer_is_configurable_and_random_is_seeded() {
    let model = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let mut net = Network::new(CpuBackend::new(Some(1)).unwrap(), &model).unwrap();
    let x = model.preprocess.normalize(&vec![128.0; 32 * 32 * 3]);
    let cam = |net: &Network<CpuBackend>| {
        net.explain_each(
            &x,
            &[Request::new(Method::GradCam, Target::Rank(1))],
            Preset::Paper,
        )
        .unwrap()
        .remove(0)
        .explanations
        .remove(0)
        .relevance
    };
    let last = cam(&net);
    net.set_gradcam_layer("conv1_1").unwrap();
    assert_ne!(cam(&net), last);
    assert!(
        net.set_gradcam_layer("pool1")
            .unwrap_err()
            .to_string()
            .contains("conv1_1")
    );

    let random = |seed| {
        net.explain_each(
            &x,
            &[Request::new(Method::Random { seed }, Target::Rank(1))],
            Preset::Paper,
        )
        .unwrap()
        .remove(0)
        .explanations
        .remove(0)
        .relevance
    };
    assert_eq!(random(5), random(5));
    assert_ne!(random(5), random(6));
}
