//! The CPU reference against Zennit 0.5.1 (`tests/fixtures/make_zennit_fixtures.py`): logits and
//! LRP / CLRP / SGLRP relevance with the `zennit` preset, within docs/numerics.md §Bounds.
//!
//! The oracle is Zennit run in float64 on the same float32 weights and input
//! (`relevance_f64.*`, `logits_f64`). Contrastive maps (CLRP, SGLRP) are the small difference of
//! the target's and the other classes' relevance: on the random-weight VGG16s they cancel
//! 10³–10⁴-fold (the script measures it per map in float64 as `cancellation`, κ), and float32
//! rounding, ≈1e-7 anywhere in the forward or backward pass, is magnified κ-fold by any
//! implementation — Zennit's own float32 maps are up to 2e-3 from its float64 ones there. So each
//! map is held to the 1e-4 of docs/numerics.md §Bounds, or to κ·1e-6 where that is larger (LRP has κ = 1).

mod common;

use std::collections::HashMap;

use common::{Fixture, fixtures, generated_vgg16, nchw_to_nhwc, rel_l2, write_safetensors};
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::{Model, Preprocess};

const LOGITS_BOUND: f64 = 1e-5;
const RELEVANCE_BOUND: f64 = 1e-4;
/// Relative float32 error allowed per unit of cancellation.
const PER_CANCELLATION: f64 = 1e-6;

/// Runs the model on the fixture's input and compares every logit vector and relevance map, once
/// end to end (our logits, our heads) and once for the relevance pass alone (Zennit's heads).
fn check(model: &Model, fixture: &Fixture, input_nhwc: &[f32]) {
    let net = Network::new(CpuBackend::new(None).unwrap(), model).unwrap();
    let (tshape, targets) = fixture.get("targets");
    let (n, t) = (tshape[0], tshape[1]);
    let classes = net.num_classes();
    let methods = Method::PAPER;
    let ours: Vec<Vec<Request>> = (0..n)
        .map(|i| {
            (0..t)
                .flat_map(|j| {
                    methods
                        .clone()
                        .map(|m| Request::new(m, Target::Class(targets[i * t + j] as usize)))
                })
                .collect()
        })
        .collect();
    let zennit_heads: Vec<Vec<Request>> = (0..n)
        .map(|i| {
            (0..t)
                .flat_map(|j| {
                    methods.clone().map(|m| {
                        let h = &fixture.get(&format!("head_f64.{m}")).1[(i * t + j) * classes..]
                            [..classes];
                        Request::new(
                            Method::Custom(h.to_vec()),
                            Target::Class(targets[i * t + j] as usize),
                        )
                    })
                })
                .collect()
        })
        .collect();
    let kappa: HashMap<String, Vec<Vec<f64>>> =
        serde_json::from_str(&fixture.metadata["cancellation"]).unwrap();
    let mut worst = 0.0f64;
    for (label, requests) in [("end to end", ours), ("relevance pass", zennit_heads)] {
        let results = net.explain(input_nhwc, &requests, Preset::Zennit).unwrap();
        for (i, result) in results.iter().enumerate() {
            for name in ["logits", "logits_f64"] {
                let want = &fixture.get(name).1[i * classes..][..classes];
                let err = rel_l2(&result.logits, want);
                assert!(
                    err <= LOGITS_BOUND,
                    "image {i}: logits vs {name}: rel L2 {err:.2e}"
                );
            }
            for (k, explanation) in result.explanations.iter().enumerate() {
                let (slot, method) = (k / methods.len(), methods[k % methods.len()].name());
                let (shape, want) = fixture.get(&format!("relevance_f64.{method}"));
                let map: usize = shape[2..].iter().product();
                let want = &want[(i * t + slot) * map..][..map];
                let err = rel_l2(&explanation.relevance, want);
                let bound = RELEVANCE_BOUND.max(PER_CANCELLATION * kappa[method][i][slot]);
                worst = worst.max(err / bound);
                assert!(
                    err <= bound,
                    "{label}: image {i}, target {}, {method}: rel L2 {err:.2e} > {bound:.2e}",
                    explanation.target
                );
            }
        }
    }
    eprintln!("worst relevance error ÷ bound: {worst:.2}");
}

/// The fixture's pre-processed input, checked against the engine's pre-processing of its pixels.
fn input(fixture: &Fixture, pre: &Preprocess) -> Vec<f32> {
    let (shape, x) = fixture.get("input");
    let (n, h, w) = (shape[0], shape[2], shape[3]);
    let nhwc = nchw_to_nhwc(x, n, h, w);
    let ours = pre.normalize(&fixture.get("pixels").1);
    let err = rel_l2(&ours, &nhwc);
    assert!(
        err < 1e-6,
        "pre-processing differs from the fixture's: rel L2 {err:.2e}"
    );
    nhwc
}

#[test]
fn small_vgg_matches_zennit() {
    let model = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let fixture = Fixture::load("small_vgg.expected.safetensors");
    check(&model, &fixture, &input(&fixture, &model.preprocess));
}

#[test]
fn odd_sized_vgg_matches_zennit() {
    let model = Model::load(fixtures().join("odd_vgg.model.safetensors")).unwrap();
    assert_eq!(model.input_side, 30);
    let fixture = Fixture::load("odd_vgg.expected.safetensors");
    check(&model, &fixture, &input(&fixture, &model.preprocess));
}

/// Generates the fixtures' VGG16 and checks it against the checksums the script recorded.
fn vgg16_tensors(fixture: &Fixture) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let tensors = generated_vgg16(3, 64, 1000);
    let sums: std::collections::HashMap<String, (f64, f64)> =
        serde_json::from_str(&fixture.metadata["weight_checksums"]).unwrap();
    for (name, _, values) in &tensors {
        let (sum, abs) = sums[name];
        let ours: f64 = values.iter().map(|&v| v as f64).sum();
        let ours_abs: f64 = values.iter().map(|&v| (v as f64).abs()).sum();
        assert!(
            (ours - sum).abs() < 1e-6 * abs && (ours_abs - abs).abs() < 1e-9 * abs,
            "{name}: generator differs"
        );
    }
    tensors
}

#[test]
fn torchvision_vgg16_matches_zennit() {
    let fixture = Fixture::load("vgg16_tv64.expected.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg16.safetensors");
    write_safetensors(&path, &vgg16_tensors(&fixture), None);
    let model = Model::load(&path).unwrap();
    assert_eq!((model.input_side, model.num_classes()), (64, 1000));
    assert_eq!(model.preprocess, Preprocess::torchvision());
    check(&model, &fixture, &input(&fixture, &model.preprocess));
}

#[test]
fn keras_exported_vgg16_matches_zennit() {
    let fixture = Fixture::load("vgg16_keras64.expected.safetensors");
    let tensors = vgg16_tensors(&fixture);
    // The Keras export: the same layers, own format, first dense columns in (H, W, C) order.
    let mut own = Vec::new();
    for (name, shape, values) in tensors {
        let values = if name == "classifier.0.weight" {
            let (h, w, c) = (2, 2, 512);
            let mut hwc = vec![0.0; values.len()];
            for (src, dst) in values
                .chunks_exact(h * w * c)
                .zip(hwc.chunks_exact_mut(h * w * c))
            {
                for ch in 0..c {
                    for p in 0..h * w {
                        dst[p * c + ch] = src[ch * h * w + p];
                    }
                }
            }
            hwc
        } else {
            values
        };
        own.push((name, shape, values));
    }
    let layers = "conv64 conv64 pool conv128 conv128 pool conv256 conv256 conv256 pool conv512 conv512 conv512 pool conv512 conv512 conv512 pool flatten dense4096 dense4096 dense1000";
    let tokens: Vec<&str> = layers.split(' ').collect();
    let param_layers: Vec<usize> = (0..tokens.len())
        .filter(|&i| tokens[i].starts_with("conv") || tokens[i].starts_with("dense"))
        .collect();
    let renamed: Vec<_> = own
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape, values))| {
            let suffix = if name.ends_with("weight") {
                "weight"
            } else {
                "bias"
            };
            (
                format!("layers.{}.{suffix}", param_layers[k / 2]),
                shape,
                values,
            )
        })
        .collect();
    let metadata = [
        ("sglrp.format", "1"),
        ("sglrp.layers", layers),
        ("sglrp.input_size", "64"),
        ("sglrp.flatten", "hwc"),
        ("sglrp.preprocess", "caffe"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg16_keras.safetensors");
    write_safetensors(&path, &renamed, Some(metadata));
    let model = Model::load(&path).unwrap();
    assert_eq!(model.preprocess, Preprocess::caffe());
    check(&model, &fixture, &input(&fixture, &model.preprocess));
}
