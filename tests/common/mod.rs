//! Helpers shared by the integration tests: a seeded generator that the fixture scripts reproduce
//! bit for bit, fixture reading, and error measures from docs/numerics.md §Bounds.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// splitmix64, as in `tests/fixtures/make_zennit_fixtures.py`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1), exact in f32: element `i` of tensor `t` for `seed`.
pub fn uniform(seed: u64, t: u64, i: u64) -> f32 {
    (splitmix64((seed << 56).wrapping_add(t << 40).wrapping_add(i)) >> 40) as f32
        / (1u32 << 24) as f32
}

/// `(2u − 1)·bound` for `len` elements of tensor `t`: the fixtures' weights.
pub fn symmetric(seed: u64, t: u64, len: usize, bound: f32) -> Vec<f32> {
    (0..len as u64)
        .map(|i| (uniform(seed, t, i) * 2.0 - 1.0) * bound)
        .collect()
}

/// A small seeded generator for random test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(1);
        (splitmix64(self.0) >> 40) as f32 / (1u32 << 24) as f32
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }
    pub fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| self.range(lo, hi)).collect()
    }
}

/// ‖a − b‖₂ / ‖b‖₂ (docs/numerics.md §Bounds); infinite if either holds a NaN or Inf.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared maps differ in length");
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

pub fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

/// A fixture file: f32 tensors (i64 ones converted), their shapes and the metadata.
pub struct Fixture {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let path = fixtures().join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let data: Vec<f32> = match view.dtype() {
                    safetensors::Dtype::F32 => view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                    safetensors::Dtype::F64 => view
                        .data()
                        .chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                        .collect(),
                    safetensors::Dtype::I64 => view
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                        .collect(),
                    other => panic!("{name}: unexpected dtype {other:?}"),
                };
                (name, (view.shape().to_vec(), data))
            })
            .collect();
        Fixture {
            tensors,
            metadata: header.metadata().clone().unwrap_or_default(),
        }
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture tensor {name} missing"))
    }
}

/// `(N, 3, H, W)` → `(N, H, W, 3)`.
pub fn nchw_to_nhwc(x: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for c in 0..3 {
            for p in 0..h * w {
                out[(i * h * w + p) * 3 + c] = x[(i * 3 + c) * h * w + p];
            }
        }
    }
    out
}

/// Writes named f32 tensors (with metadata) as a safetensors file.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, metadata, path).unwrap();
}

/// torchvision VGG16 with generated weights (fixtures `vgg16_tv64`/`vgg16_keras64`): tensors
/// in state-dict order, `t` counting them, bound `sqrt(6/fan_in)` for weights and 0.1 for biases.
pub fn generated_vgg16(
    seed: u64,
    side: usize,
    classes: usize,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut tensors = Vec::new();
    let mut t = 0u64;
    let mut push = |name: String, shape: Vec<usize>, bound: f32, tensors: &mut Vec<_>| {
        let len = shape.iter().product();
        tensors.push((name, shape, symmetric(seed, t, len, bound)));
        t += 1;
    };
    let mut index = 0;
    let mut cin = 3;
    for (width, repeats) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
        for _ in 0..repeats {
            let bound = (6.0f64 / (cin * 9) as f64).sqrt() as f32;
            push(
                format!("features.{index}.weight"),
                vec![width, cin, 3, 3],
                bound,
                &mut tensors,
            );
            push(
                format!("features.{index}.bias"),
                vec![width],
                0.1,
                &mut tensors,
            );
            cin = width;
            index += 2;
        }
        index += 1; // the pool
    }
    let spatial = side >> 5;
    let mut inputs = 512 * spatial * spatial;
    for (k, outputs) in [(0, 4096), (3, 4096), (6, classes)] {
        let bound = (6.0f64 / inputs as f64).sqrt() as f32;
        push(
            format!("classifier.{k}.weight"),
            vec![outputs, inputs],
            bound,
            &mut tensors,
        );
        push(
            format!("classifier.{k}.bias"),
            vec![outputs],
            0.1,
            &mut tensors,
        );
        inputs = outputs;
    }
    tensors
}
