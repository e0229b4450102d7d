//! What a loader folds into the layers when a model is loaded: a batch-norm right after a conv or
//! dense layer (before its ReLU) into that layer, exactly; an affine map after a ReLU into the
//! next layer (docs/method.md §Network); and the first dense layer's columns into the engine's
//! flatten order.

use super::{Dims, Layer, LayerSpec};

/// A per-channel (or per-feature) map `a ↦ scale·a + shift`, in f64.
pub(super) struct ChannelMap {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
}

impl ChannelMap {
    /// A batch-norm in inference form: `scale = γ / √(σ² + ε)`, `shift = β − μ·scale`.
    pub fn batch_norm(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f64) -> Self {
        let scale: Vec<f64> = gamma
            .iter()
            .zip(var)
            .map(|(&g, &v)| g as f64 / (v as f64 + eps).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(mean)
            .zip(&scale)
            .map(|((&b, &m), s)| b as f64 - m as f64 * s)
            .collect();
        ChannelMap { scale, shift }
    }
}

/// Folds `map`, applied to the outputs of `layer` before its ReLU, into the layer: each output's
/// weights times its scale, its bias `b·scale + shift` (for a batch-norm `(b − μ)·s + β`). Exact —
/// the map acts on the layer's outputs, so zero padding is untouched — and computed in f64,
/// rounded once. Returns whether every folded value is finite.
pub(super) fn fold_into(layer: &mut Layer, map: &ChannelMap) -> bool {
    let (weight, bias) = match layer {
        Layer::Conv(p) => (&mut p.weight, &mut p.bias),
        Layer::Dense(p) => (&mut p.weight, &mut p.bias),
        Layer::Pool | Layer::Flatten => return true,
    };
    let row = weight.len() / bias.len().max(1);
    for (o, (b, (s, t))) in bias
        .iter_mut()
        .zip(map.scale.iter().zip(&map.shift))
        .enumerate()
    {
        for w in &mut weight[o * row..][..row] {
            *w = (*w as f64 * s) as f32;
        }
        *b = (*b as f64 * s + t) as f32;
    }
    weight.iter().chain(bias.iter()).all(|v| v.is_finite())
}

/// Folds `a ↦ scale·a + shift` (per channel or feature, after a ReLU) into the next conv/dense
/// layer, at position `next` or after a flatten there: W' = W·diag(scale), b' = W·shift + b.
/// For a conv, zero padding is not shifted, so the fold is exact only away from the border.
pub(super) fn fold_affine(layers: &mut [Layer], next: usize, scale: &[f32], shift: &[f32]) {
    let target = if matches!(layers.get(next), Some(Layer::Flatten)) {
        next + 1
    } else {
        next
    };
    let features = scale.len().max(1);
    let (weight, bias, row, per) = match layers.get_mut(target) {
        Some(Layer::Dense(p)) => (&mut p.weight, &mut p.bias, p.inputs, 1),
        Some(Layer::Conv(p)) => (&mut p.weight, &mut p.bias, p.cin * 9, 9),
        _ => return,
    };
    if row == 0 {
        return;
    }
    for (row, b) in weight.chunks_exact_mut(row).zip(bias) {
        let mut add = 0.0f64;
        for (j, w) in row.iter_mut().enumerate() {
            let channel = (j / per) % features;
            add += *w as f64 * shift[channel] as f64;
            *w *= scale[channel];
        }
        *b += add as f32;
    }
}

/// The order of the first dense layer's input columns in a file.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum FlattenOrder {
    /// PyTorch: (C, H, W).
    Chw,
    /// Keras and the engine: (H, W, C).
    Hwc,
}

/// Permutes the columns of the dense layer after `flatten` from the file's order into the
/// engine's (H, W, C) order; `dims` are the layers' dims.
pub(super) fn reorder_flatten(layers: &mut [Layer], dims: &[(Dims, Dims)], order: FlattenOrder) {
    if order == FlattenOrder::Hwc {
        return;
    }
    let Some(flatten) = layers.iter().position(|l| l.spec() == LayerSpec::Flatten) else {
        return;
    };
    let Some(&(map, _)) = dims.get(flatten) else {
        return;
    };
    let Some(Layer::Dense(dense)) = layers.get_mut(flatten + 1) else {
        return;
    };
    if dense.inputs == 0 || dense.inputs != map.len() {
        return;
    }
    let Dims { h, w, c } = map;
    let mut reordered = vec![0.0; dense.weight.len()];
    for (src, dst) in dense
        .weight
        .chunks_exact(dense.inputs)
        .zip(reordered.chunks_exact_mut(dense.inputs))
    {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    dst[(y * w + x) * c + ch] = src[(ch * h + y) * w + x];
                }
            }
        }
    }
    dense.weight = reordered;
}
