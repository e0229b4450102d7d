//! The paper's quantitative evaluation (docs/evaluation.md): maximal patch masking for the ground-truth and
//! the second most probable class, and the energy pointing game, per image and method.

pub mod metrics;
pub mod occlusion;
pub mod report;
pub mod summary;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::Result;
use crate::explain::{Method, Network, Preset, Request, Target, softmax};
use crate::heatmap::{HeatmapKind, heatmap};
use metrics::{argmax_first, patch, pointing_game};
use occlusion::{Occlusion, Rect};

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub methods: Vec<Method>,
    pub preset: Preset,
    /// Patch sides `p` for maximal patch masking.
    pub patch_sizes: Vec<usize>,
    /// Energies `E` of the pointing game, as fractions.
    pub energies: Vec<f64>,
    /// Seeds the Random method (mixed with each image's key).
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            methods: vec![
                Method::Lrp,
                Method::Clrp,
                Method::Sglrp,
                Method::GuidedGradCam,
                Method::Random { seed: 0 },
            ],
            preset: Preset::Paper,
            patch_sizes: vec![1, 3, 5, 7, 9],
            energies: (1..=20).map(|k| k as f64 * 0.05).collect(),
            seed: 0,
        }
    }
}

/// One image to evaluate.
pub struct EvalImage<'a> {
    /// Names the image in the results and seeds its Random maps.
    pub key: &'a str,
    /// Pre-processed input `(S, S, 3)`.
    pub input: &'a [f32],
    /// Ground-truth class.
    pub label: usize,
    /// `(S, S)`: whether each input pixel lies in a box of the ground-truth class.
    pub inside: &'a [bool],
}

/// One method's scores on one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodScores {
    pub method: String,
    /// Δŷ_t per patch size, t = the ground truth.
    pub masking_label: Vec<f64>,
    /// Δŷ_t per patch size, t = the second most probable class.
    pub masking_second: Vec<f64>,
    /// Pointing-game accuracy per energy, for the ground truth.
    pub pointing: Vec<f64>,
}

/// One image's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageScores {
    pub image: String,
    pub label: usize,
    pub predicted: usize,
    pub second: usize,
    pub p_label: f64,
    pub p_second: f64,
    pub methods: Vec<MethodScores>,
}

/// Evaluates a batch of images: one forward pass, one explanation call for every method × {label,
/// second class}, then the masked re-runs of each image.
pub fn evaluate<B: Backend>(
    net: &Network<B>,
    images: &[EvalImage],
    cfg: &EvalConfig,
) -> Result<Vec<ImageScores>> {
    let side = net.info().input_side;
    let input: Vec<f32> = images
        .iter()
        .flat_map(|im| im.input.iter().copied())
        .collect();
    let fwd = net.forward_for(&input, cfg.preset)?;
    let requests: Vec<Vec<Request>> = images
        .iter()
        .map(|im| {
            let seed = cfg.seed ^ fnv1a(im.key);
            cfg.methods
                .iter()
                .flat_map(|m| {
                    let method = |salt: u64| match m {
                        Method::Random { .. } => Method::Random { seed: seed ^ salt },
                        other => other.clone(),
                    };
                    [
                        Request::new(method(0), Target::Class(im.label)),
                        Request::new(method(1), Target::Rank(2)),
                    ]
                })
                .collect()
        })
        .collect();
    let explained = net.explain_forward(&fwd, &requests, cfg.preset)?;
    let mut scores = Vec::with_capacity(images.len());
    for (i, (im, result)) in images.iter().zip(&explained).enumerate() {
        let second = result.explanations[1].target;
        let heatmaps: Vec<Vec<f32>> = result
            .explanations
            .iter()
            .map(|e| heatmap(&e.relevance, e.channels, HeatmapKind::Positive))
            .collect();
        // Every patch of every heatmap, masked in one batch of re-runs.
        let mut rects: Vec<Rect> = Vec::new();
        for map in &heatmaps {
            let top = argmax_first(map);
            rects.extend(
                cfg.patch_sizes
                    .iter()
                    .map(|&p| patch(top / side, top % side, p, side)),
            );
        }
        let masked = Occlusion::new(net, &fwd, i)?.logits(&rects)?;
        let p = &result.probabilities;
        let delta = |k: usize, class: usize| softmax(&masked[k])[class] as f64 - p[class] as f64;
        let sizes = cfg.patch_sizes.len();
        let methods = cfg
            .methods
            .iter()
            .enumerate()
            .map(|(m, method)| MethodScores {
                method: method.name().into(),
                masking_label: (0..sizes)
                    .map(|k| delta((2 * m) * sizes + k, im.label))
                    .collect(),
                masking_second: (0..sizes)
                    .map(|k| delta((2 * m + 1) * sizes + k, second))
                    .collect(),
                pointing: pointing_game(&heatmaps[2 * m], im.inside, &cfg.energies),
            })
            .collect();
        scores.push(ImageScores {
            image: im.key.to_string(),
            label: im.label,
            predicted: crate::explain::ranking(&result.logits)[0],
            second,
            p_label: p[im.label] as f64,
            p_second: p[second] as f64,
            methods,
        });
    }
    Ok(scores)
}

/// Means over images: per method, the masking curves and the pointing curve.
pub fn means(scores: &[ImageScores]) -> Vec<MethodScores> {
    let Some(first) = scores.first() else {
        return Vec::new();
    };
    let mean = |pick: &dyn Fn(&ImageScores) -> &Vec<f64>| -> Vec<f64> {
        let len = pick(first).len();
        (0..len)
            .map(|k| scores.iter().map(|s| pick(s)[k]).sum::<f64>() / scores.len() as f64)
            .collect()
    };
    (0..first.methods.len())
        .map(|m| MethodScores {
            method: first.methods[m].method.clone(),
            masking_label: mean(&|s| &s.methods[m].masking_label),
            masking_second: mean(&|s| &s.methods[m].masking_second),
            pointing: mean(&|s| &s.methods[m].pointing),
        })
        .collect()
}

/// FNV-1a of a string: a stable per-image seed.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
