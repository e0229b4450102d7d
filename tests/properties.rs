//! Properties every implementation must show (docs/method.md §Properties), on the small fixture network with seeded
//! random inputs, and the `innvestigate` preset's rescaling on a case computed by hand.

mod common;

use common::{Rng, fixtures, rel_l2};
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{
    Formulation, Method, Network, Outputs, Preset, Request, Rule, Target, head, hwc_to_chw,
};
use sglrp::heatmap::{HeatmapKind, heatmap};
use sglrp::model::{Channels, ConvParams, DenseParams, Layer, Model, Preprocess, Resize};

fn small_net() -> Network<CpuBackend> {
    let model = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    Network::new(CpuBackend::new(Some(2)).unwrap(), &model).unwrap()
}

/// Random images inside the z^B box: pixels in 0‥255, pre-processed.
fn images(net: &Network<CpuBackend>, n: usize, seed: u64) -> Vec<f32> {
    let side = net.info().input_side;
    let pixels = Rng::new(seed).vec(n * side * side * 3, 0.0, 255.0);
    net.info().preprocess.normalize(&pixels)
}

fn all_requests() -> Vec<Request> {
    [Target::Rank(1), Target::Rank(2), Target::Class(7)]
        .into_iter()
        .flat_map(|t| Method::PAPER.map(|m| Request::new(m, t)))
        .collect()
}

#[test]
fn paper_preset_conserves_relevance() {
    let net = small_net();
    for seed in [1, 2, 3] {
        let x = images(&net, 2, seed);
        for result in net
            .explain_each(&x, &all_requests(), Preset::Paper)
            .unwrap()
        {
            for e in &result.explanations {
                let total: f64 = e.relevance.iter().map(|&v| v as f64).sum();
                let scale: f64 = e.relevance.iter().map(|&v| (v as f64).abs()).sum();
                let expected: f64 = e.head.iter().map(|&v| v as f64).sum();
                // Rounding is relative to the relevance that flows, which for the contrastive
                // heads is the size of the head, not of the (cancelled) result.
                let flow = scale + e.head.iter().map(|&v| (v as f64).abs()).sum::<f64>();
                assert!(
                    (total - expected).abs() <= 1e-5 * flow,
                    "seed {seed}, {} target {}: ΣR = {total}, head sum {expected}, Σ|R| = {scale}",
                    e.method,
                    e.target
                );
                if e.method != Method::Lrp {
                    assert!(expected.abs() < 1e-6, "contrastive heads sum to zero");
                }
            }
        }
    }
}

#[test]
fn backward_pass_is_linear_in_the_head() {
    let net = small_net();
    let x = images(&net, 1, 4);
    let z = net.classify(&x).unwrap().remove(0);
    let (h1, h2) = (head(&Method::Sglrp, &z, 3), head(&Method::Clrp, &z, 5));
    let mixed: Vec<f32> = h1.iter().zip(&h2).map(|(a, b)| 2.0 * a - 0.5 * b).collect();
    let requests: Vec<Request> = [h1, h2, mixed]
        .into_iter()
        .map(|h| Request::new(Method::Custom(h), Target::Class(0)))
        .collect();
    for preset in [Preset::Paper, Preset::Zennit] {
        let r = net
            .explain_each(&x, &requests, preset)
            .unwrap()
            .remove(0)
            .explanations;
        let combined: Vec<f32> = r[0]
            .relevance
            .iter()
            .zip(&r[1].relevance)
            .map(|(a, b)| 2.0 * a - 0.5 * b)
            .collect();
        let err = rel_l2(&r[2].relevance, &combined);
        assert!(err < 1e-5, "{preset}: rel L2 {err:.2e}");
    }
}

#[test]
fn one_pass_for_many_heads_equals_separate_passes() {
    let net = small_net();
    let x = images(&net, 2, 5);
    let together = net
        .explain_each(&x, &all_requests(), Preset::Paper)
        .unwrap();
    for (k, request) in all_requests().into_iter().enumerate() {
        let alone = net.explain_each(&x, &[request], Preset::Paper).unwrap();
        for (a, t) in alone.iter().zip(&together) {
            assert_eq!(
                a.explanations[0].relevance, t.explanations[k].relevance,
                "request {k}"
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_the_batch() {
    let net = small_net();
    let x = images(&net, 3, 6);
    let map = net.info().input_len();
    for preset in [Preset::Paper, Preset::Innvestigate] {
        let batch = net.explain_each(&x, &all_requests(), preset).unwrap();
        for (i, image) in x.chunks(map).enumerate() {
            let alone = net
                .explain_each(image, &all_requests(), preset)
                .unwrap()
                .remove(0);
            assert_eq!(alone.logits, batch[i].logits);
            for (a, b) in alone.explanations.iter().zip(&batch[i].explanations) {
                assert_eq!(
                    a.relevance, b.relevance,
                    "{preset}, image {i}, {}",
                    a.method
                );
            }
        }
    }
}

#[test]
fn same_input_same_bits() {
    let net = small_net();
    let x = images(&net, 2, 7);
    let a = net
        .explain_each(&x, &all_requests(), Preset::Zennit)
        .unwrap();
    let b = net
        .explain_each(&x, &all_requests(), Preset::Zennit)
        .unwrap();
    for (ra, rb) in a.iter().zip(&b) {
        for (ea, eb) in ra.explanations.iter().zip(&rb.explanations) {
            assert_eq!(ea.relevance, eb.relevance);
        }
    }
}

#[test]
fn targets_resolve_by_rank_and_reject_out_of_range() {
    let net = small_net();
    let x = images(&net, 1, 8);
    let z = net.classify(&x).unwrap().remove(0);
    let top = sglrp::explain::ranking(&z);
    let r = net
        .explain_each(
            &x,
            &[
                Request::new(Method::Lrp, Target::Rank(1)),
                Request::new(Method::Lrp, Target::Rank(2)),
            ],
            Preset::Paper,
        )
        .unwrap();
    assert_eq!(
        (r[0].explanations[0].target, r[0].explanations[1].target),
        (top[0], top[1])
    );
    for bad in [Target::Class(10), Target::Rank(0), Target::Rank(11)] {
        let err = net
            .explain_each(&x, &[Request::new(Method::Lrp, bad)], Preset::Paper)
            .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }
    let err = net
        .explain_each(
            &x,
            &[Request::new(Method::Custom(vec![1.0; 3]), Target::Class(0))],
            Preset::Paper,
        )
        .unwrap_err();
    assert!(err.to_string().contains("3 values"), "{err}");
    let mut nan = x.clone();
    nan[5] = f32::NAN;
    assert!(net.classify(&nan).is_err());
    assert!(net.classify(&x[..10]).is_err());
}

/// A network small enough to follow by hand: a 2×2 RGB input, a conv with two output channels that
/// copy the red and the green pixel (centre tap 1, no bias), one 2×2 pool, and a dense layer with
/// W = [[2, 1], [1, 3]], b = [0.5, −1]. Bounds are l = 0, h = 1.
fn hand_model() -> Model {
    let mut weight = vec![0.0; 2 * 3 * 9];
    weight[4] = 1.0; // output 0, input red, centre tap
    weight[(3 + 1) * 9 + 4] = 1.0; // output 1, input green, centre tap
    Model {
        name: "hand".into(),
        layers: vec![
            Layer::Conv(ConvParams {
                cin: 3,
                cout: 2,
                weight,
                bias: vec![0.0; 2],
            }),
            Layer::Pool,
            Layer::Flatten,
            Layer::Dense(DenseParams {
                inputs: 2,
                outputs: 2,
                weight: vec![2.0, 1.0, 1.0, 3.0],
                bias: vec![0.5, -1.0],
            }),
        ],
        input_side: 2,
        preprocess: Preprocess {
            channels: Channels::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize: Resize::Direct,
        },
        classes: vec!["a".into(), "b".into()],
    }
}

#[test]
fn innvestigate_rescaling_by_hand() {
    // Red peaks at pixel (0,0), green at (1,1): the pooled activations are A = B = 1, so the
    // logits are z = [3.5, 3]. CLRP for class 0, with full bias in the z⁺ denominators:
    //   target pass  s = [z0/z0, 0]            → R_A = 2,       R_B = 1        (ΣR_T = 3)
    //   others pass  s = [0, z0/(N−1)/z1]      → R_A = 3.5/3,   R_B = 3·3.5/3  (ΣR_O = 14/3)
    //   map = R_T − R_O·ΣR_T/ΣR_O              → R_A = 1.25,    R_B = −1.25
    // z^B on the copying conv hands R_A to the red value at (0,0) and R_B to the green at (1,1).
    let net = Network::new(CpuBackend::new(Some(1)).unwrap(), &hand_model()).unwrap();
    #[rustfmt::skip]
    let x = [
        1.0, 0.1, 0.0,   0.2, 0.2, 0.0,
        0.3, 0.3, 0.0,   0.1, 1.0, 0.0,
    ];
    let r = net
        .explain_each(
            &x,
            &[Request::new(Method::Clrp, Target::Class(0))],
            Preset::Innvestigate,
        )
        .unwrap();
    assert_eq!(r[0].logits, vec![3.5, 3.0]);
    let relevance = &r[0].explanations[0].relevance; // (3, 2, 2)
    let mut expected = [0.0f32; 12];
    expected[0] = 1.25; // red, (0,0)
    expected[4 + 3] = -1.25; // green, (1,1)
    for (got, want) in relevance.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{relevance:?}");
    }
    // LRP has no others pass: its map is the target pass, R_A = 2 and R_B = 1 (ΣR = 3 = 2A + B).
    let r = net
        .explain_each(
            &x,
            &[Request::new(Method::Lrp, Target::Class(0))],
            Preset::Innvestigate,
        )
        .unwrap();
    let relevance = &r[0].explanations[0].relevance;
    assert!(
        (relevance[0] - 2.0).abs() < 1e-6 && (relevance[7] - 1.0).abs() < 1e-6,
        "{relevance:?}"
    );
}

/// Per explanation of `net.explain_each`, the per-op pass ([`Formulation::Reference`], one head
/// at a time) from its head down to the input of layer `stop`, as `(C, H, W)`.
fn reference_maps_at(
    net: &mut Network<CpuBackend>,
    x: &[f32],
    results: &[sglrp::explain::ImageResult],
    preset: Preset,
    stop: usize,
) -> Vec<Vec<f32>> {
    let formulation = net.formulation();
    net.set_formulation(Formulation::Reference);
    let side = net.info().input_side;
    let d = net.info().dims[stop].0;
    let mut maps = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let image = &x[i * side * side * 3..][..side * side * 3];
        let fwd = net.forward(image).unwrap();
        for e in &result.explanations {
            let hwc = net
                .backward(&fwd, 1, &e.head, Rule::Relevance(preset), stop)
                .unwrap();
            maps.push(hwc_to_chw(&hwc, d.h, d.w, d.c));
        }
    }
    net.set_formulation(formulation);
    maps
}

#[test]
fn relevance_at_a_layer_is_the_reference_pass_stopped_there() {
    let mut net = small_net();
    let x = images(&net, 2, 5);
    let names = net.info().layer_names.clone();
    for preset in [Preset::Paper, Preset::Zennit] {
        for (stop, name) in names.iter().enumerate().skip(1) {
            net.set_relevance_layer(Some(name)).unwrap();
            assert_eq!(net.relevance_layer(), stop);
            for formulation in [Formulation::Fused, Formulation::Reference] {
                net.set_formulation(formulation);
                let results = net.explain_each(&x, &all_requests(), preset).unwrap();
                let expected = reference_maps_at(&mut net, &x, &results, preset, stop);
                let got = results.iter().flat_map(|r| &r.explanations);
                for (e, want) in got.zip(&expected) {
                    assert_eq!(e.shape, net.info().map_shape(stop), "{name}");
                    assert_eq!(e.relevance.len(), want.len());
                    // The per-op pass is the oracle: the same ops bit for bit; the fused pass
                    // to rounding of the relevance that flows (the head's size for the
                    // contrastive heads, whose maps cancel).
                    let flow: f64 = e.head.iter().map(|&v| (v as f64).abs()).sum();
                    let worst = e
                        .relevance
                        .iter()
                        .zip(want)
                        .map(|(&a, &b)| (a as f64 - b as f64).abs())
                        .fold(0.0, f64::max);
                    match formulation {
                        Formulation::Reference => assert_eq!(&e.relevance, want, "{name}"),
                        Formulation::Fused => assert!(
                            worst <= 1e-5 * flow,
                            "{preset:?} {name} {}: max |fused − reference| = {worst:e}, head {flow:e}",
                            e.method
                        ),
                    }
                }
            }
        }
    }
}

#[test]
fn paper_preset_conserves_relevance_at_every_layer() {
    let mut net = small_net();
    let x = images(&net, 2, 6);
    let names = net.info().layer_names.clone();
    for name in &names {
        net.set_relevance_layer(Some(name)).unwrap();
        for result in net
            .explain_each(&x, &all_requests(), Preset::Paper)
            .unwrap()
        {
            for e in &result.explanations {
                let total: f64 = e.relevance.iter().map(|&v| v as f64).sum();
                let expected: f64 = e.head.iter().map(|&v| v as f64).sum();
                let flow: f64 = e
                    .relevance
                    .iter()
                    .chain(&e.head)
                    .map(|&v| (v as f64).abs())
                    .sum();
                assert!(
                    (total - expected).abs() <= 1e-5 * flow,
                    "{name}, {} target {}: ΣR = {total}, head sum {expected}",
                    e.method,
                    e.target
                );
            }
        }
    }
}

#[test]
fn an_unknown_relevance_layer_is_an_error_naming_the_layers() {
    let mut net = small_net();
    let e = net
        .set_relevance_layer(Some("conv7_1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv7_1") && e.contains("pool1, conv2_1"), "{e}");
    assert_eq!(net.relevance_layer(), 0, "an error keeps the setting");
    net.set_relevance_layer(None).unwrap();
}

/// Heatmaps asked of the network equal the heatmaps of its maps: made on the backend for the
/// LRP methods (their maps then left out when asked), on the host for the two-pass preset's
/// combined maps and for the baselines; at an intermediate conv layer too.
#[test]
fn heatmaps_asked_for_are_the_heatmaps_of_the_maps() {
    let mut requests = all_requests();
    requests.push(Request::new(Method::GuidedBackprop, Target::Rank(1)));
    for (preset, layer, kind) in [
        (Preset::Zennit, None, HeatmapKind::Positive),
        (Preset::Innvestigate, None, HeatmapKind::Signed),
        (Preset::Paper, Some("conv2_1"), HeatmapKind::Absolute),
    ] {
        let mut net = small_net();
        let x = images(&net, 2, 11);
        net.set_relevance_layer(layer).unwrap();
        let maps = net.explain_each(&x, &requests, preset).unwrap();
        for relevance in [true, false] {
            net.set_outputs(Outputs {
                relevance,
                heatmap: Some(kind),
            });
            let got = net.explain_each(&x, &requests, preset).unwrap();
            for (g, w) in got
                .iter()
                .flat_map(|r| &r.explanations)
                .zip(maps.iter().flat_map(|r| &r.explanations))
            {
                let case = format!(
                    "{preset} {layer:?} {kind} {} relevance={relevance}",
                    g.method
                );
                assert!(w.heatmap.is_none(), "{case}: not asked for by default");
                let want = heatmap(&w.relevance, w.channels, kind);
                assert_eq!(g.heatmap.as_ref(), Some(&want), "{case}");
                let device_made = g.method.is_lrp() && !preset.two_pass();
                if relevance || !device_made {
                    assert_eq!(g.relevance, w.relevance, "{case}");
                } else {
                    assert!(g.relevance.is_empty(), "{case}: maps left out");
                }
                assert_eq!((g.target, &g.head), (w.target, &w.head), "{case}");
            }
        }
    }
}
