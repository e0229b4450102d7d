//! The JSON records of `result.json`, `summary.jsonl` and `classify --json`. Fields appear in
//! the order written here; paths use `/` separators: `output_dir` is relative to the output
//! folder, the files of an image relative to its `output_dir` (where its `result.json` is).

use std::collections::BTreeMap;

use std::io::Read;
use std::path::Path;

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
    /// `--layer`: the layer at whose input the maps are, and their shape, `[C, H, W]` or `[F]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_shape: Option<Vec<usize>>,
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
    /// The fingerprint of the settings that made the outputs (see `explain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
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

/// 64-bit FNV-1a, as 16 hex digits: stable across runs, builds and platforms.
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The fingerprint of a run's settings (a JSON value): a hash of its text.
pub fn fingerprint(settings: &serde_json::Value) -> String {
    format!("{:016x}", fnv1a(FNV_START, settings.to_string().as_bytes()))
}

/// A hash of the model file's bytes, so that outputs name the weights that made them.
pub fn model_hash(path: &Path) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut state = FNV_START;
    loop {
        let n = file.read(&mut buf).map_err(fail)?;
        if n == 0 {
            return Ok(format!("{state:016x}"));
        }
        state = fnv1a(state, &buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_the_settings() {
        let a = fingerprint(&serde_json::json!({"preset": "paper", "methods": ["lrp"]}));
        let b = fingerprint(&serde_json::json!({"preset": "zennit", "methods": ["lrp"]}));
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        // FNV-1a of "a" is af63dc4c8601ec8c (the reference vectors).
        assert_eq!(fnv1a(FNV_START, b"a"), 0xaf63_dc4c_8601_ec8c);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m");
        std::fs::write(&file, b"a").unwrap();
        assert_eq!(model_hash(&file).unwrap(), "af63dc4c8601ec8c");
        assert!(
            model_hash(&dir.path().join("none"))
                .unwrap_err()
                .contains("none")
        );
    }
}
