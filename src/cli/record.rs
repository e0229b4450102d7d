//! The JSON records of `result.json`, `summary.jsonl` and `classify --json`. Fields appear in
//! the order written here; paths use `/` separators: `output_dir` is relative to the output
//! folder, the files of an image relative to its `output_dir` (where its `result.json` is).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sglrp::explain::{ranking, softmax};

/// One image: what it is, how it ended, what the model said and what was written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The input path as given (or found in a folder).
    pub input: String,
    /// `ok`, `skipped` (its outputs existed) or `error`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The image's output folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    /// Width and height of the input file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<[u32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Width and height of the network's input (and of every map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_input: Option<[usize; 2]>,
    /// Channel order of the arrays (`.npy`, `.npz`): `rgb` (the default) or `bgr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<String>,
    /// Pixels of the heatmaps and arrays: `input` (the network's) or `image` (the file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_space: Option<String>,
    /// Every map of the image, with what each is (`--format npz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npz: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The top classes (at most 5), most probable first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<Prediction>,
    /// One per target and method, target-major.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanations: Vec<ExplanationRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
}

/// A class the model ranks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// 1 = most probable.
    pub rank: usize,
    pub class: usize,
    pub name: String,
    pub probability: f32,
    pub logit: f32,
}

/// One method for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplanationRecord {
    /// `lrp`, `clrp` or `sglrp`.
    pub method: String,
    /// The target as asked: `top1`, `top2`, … or `class<index>`.
    pub target: String,
    /// The class it resolved to, its name, probability and rank for this image.
    pub class: usize,
    pub name: String,
    pub probability: f32,
    pub rank: usize,
    /// Σ of the relevance put on the logits (docs/method.md §Heads): `z_t` for LRP, 0 for CLRP and SGLRP.
    pub head_sum: f64,
    /// Σ of the input relevance, of its positive part, and its largest magnitude.
    pub relevance_sum: f64,
    pub positive_sum: f64,
    pub max_abs: f32,
    /// Output files by format: `png`, `overlay`, `npy`.
    pub files: BTreeMap<String, String>,
}

/// The `k` most probable classes for `logits`.
pub fn predictions(logits: &[f32], classes: &[String], k: usize) -> Vec<Prediction> {
    let probabilities = softmax(logits);
    ranking(logits)
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(r, c)| Prediction {
            rank: r + 1,
            class: c,
            name: classes.get(c).cloned().unwrap_or_default(),
            probability: probabilities[c],
            logit: logits[c],
        })
        .collect()
}
