//! State dicts of torchvision's and timm's VGGs (README, "Model files"), read as they are: the
//! architecture — which convs, where the pools are, which batch-norms, the dense head, the input
//! side — follows from the tensor names and shapes, not from the standard widths.
//!
//! torchvision (`vgg11` … `vgg19_bn`): `features` is a `Sequential` of conv, [batch-norm,] ReLU and
//! max-pool modules, so between two convs the indices skip the ReLU (and the pool); `classifier`
//! holds the dense layers (`Linear`, ReLU, `Dropout`, …), the first fed the (C, H, W)-flattened
//! last feature map. timm (`vgg11.tv_in1k` … `vgg19_bn.tv_in1k`) has the same `features`, then
//! `pre_logits.fc1` (a conv whose kernel covers the whole last feature map: the first dense layer),
//! `pre_logits.fc2` (a 1×1 conv) and `head.fc`.

use std::collections::BTreeMap;

use super::fold::{ChannelMap, FlattenOrder, fold_into, reorder_flatten};
use super::tensors::TensorFile;
use super::vgg_name;
use super::{Layer, LayerSpec, MAX_INPUT_SIDE, Model, Preprocess, imagenet_classes, layer_dims};
use crate::error::Result;

/// PyTorch's default batch-norm ε (`nn.BatchNorm2d(eps=1e-5)`), which torchvision's and timm's
/// VGGs use; state dicts do not store it.
pub(super) const DEFAULT_BN_EPS: f64 = 1e-5;

/// Path components that wrappers put in front of a module's names: `nn.DataParallel` and
/// `DistributedDataParallel` (`module.`), `torch.compile` (`_orig_mod.`).
const WRAPPERS: [&str; 2] = ["module", "_orig_mod"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    Torchvision,
    Timm,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Torchvision => "torchvision",
            Origin::Timm => "timm",
        }
    }
}

/// Which layout the names are in, once wrapper prefixes are removed; `None` if neither.
pub(super) fn detect(file: &mut TensorFile, notes: &mut Vec<String>) -> Result<Option<Origin>> {
    let wrapped: Vec<&str> = WRAPPERS
        .into_iter()
        .filter(|w| file.names().any(|n| n.split('.').any(|part| part == *w)))
        .collect();
    if !wrapped.is_empty() {
        file.rename(|name| {
            name.split('.')
                .filter(|part| !WRAPPERS.contains(part))
                .collect::<Vec<_>>()
                .join(".")
        })?;
        notes.push(format!(
            "tensor names carry a wrapper's `{}.` prefix (a model saved from {}); loaded without it",
            wrapped.join(".`/`"),
            if wrapped == ["_orig_mod"] {
                "torch.compile"
            } else {
                "nn.DataParallel or DistributedDataParallel"
            }
        ));
    }
    let under = |prefix: &str| file.names().any(|n| n.starts_with(prefix));
    let timm = under("pre_logits.") || under("head.");
    let torchvision = under("classifier.");
    if timm && torchvision {
        return Err(file.error(
            "has both torchvision (`classifier.N`) and timm (`pre_logits.`, `head.`) tensors; expected one VGG",
        ));
    }
    Ok(if timm {
        Some(Origin::Timm)
    } else if torchvision || under("features.") {
        Some(Origin::Torchvision)
    } else {
        None
    })
}

/// A module of a `Sequential` that has parameters: a conv/linear layer or a batch-norm.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Layer,
    Norm,
}

const LAYER_PARAMS: [&str; 2] = ["weight", "bias"];
const NORM_PARAMS: [&str; 5] = [
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "num_batches_tracked",
];

/// The modules of the `Sequential` under `group` (`features`, `classifier`) with parameters, by
/// index. Any other tensor under `group.` means it is not a VGG's.
fn modules(file: &TensorFile, group: &str) -> Result<Vec<(usize, Kind)>> {
    let mut found: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for name in file.names() {
        let Some(rest) = name.strip_prefix(group).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let parsed = rest
            .split_once('.')
            .and_then(|(index, param)| Some((index.parse::<usize>().ok()?, param)))
            .filter(|(_, param)| NORM_PARAMS.contains(param));
        let Some((index, param)) = parsed else {
            return Err(file.tensor_error(
                name,
                format!(
                    "not a parameter of a VGG's `{group}` (expected `{group}.N.weight`, `.bias`, or a \
                     batch-norm's `.running_mean`, `.running_var`): not a VGG"
                ),
            ));
        };
        found.entry(index).or_default().push(param);
    }
    found
        .into_iter()
        .map(|(index, params)| {
            let norm = params.iter().any(|p| p.starts_with("running_"));
            let allowed: &[&str] = if norm { &NORM_PARAMS } else { &LAYER_PARAMS };
            if let Some(odd) = params.iter().find(|p| !allowed.contains(p)) {
                return Err(file.tensor_error(
                    &format!("{group}.{index}.{odd}"),
                    "a batch-norm statistic without its running mean and variance",
                ));
            }
            if !norm && !params.contains(&"weight") {
                return Err(file.tensor_error(
                    &format!("{group}.{index}.weight"),
                    format!("missing (`{group}.{index}.bias` has no weight)"),
                ));
            }
            Ok((index, if norm { Kind::Norm } else { Kind::Layer }))
        })
        .collect()
}

/// A conv or linear layer and the batch-norm right after it, if any.
struct Block {
    layer: usize,
    norm: Option<usize>,
    /// Modules without parameters between this block and the next (ReLU, pool, dropout).
    gap_after: Option<usize>,
}

/// Groups the modules into blocks: a batch-norm belongs to the layer right before it.
fn blocks(file: &TensorFile, group: &str, modules: &[(usize, Kind)]) -> Result<Vec<Block>> {
    let mut blocks: Vec<Block> = Vec::new();
    for &(index, kind) in modules {
        match (kind, blocks.last_mut()) {
            (Kind::Norm, Some(last)) if last.norm.is_none() && last.layer + 1 == index => {
                last.norm = Some(index);
            }
            (Kind::Norm, _) => {
                return Err(file.tensor_error(
                    &format!("{group}.{index}.running_mean"),
                    format!(
                        "a batch-norm that does not directly follow a {} layer; expected layer, \
                         batch-norm, ReLU as in torchvision's vgg*_bn",
                        if group == "features" { "conv" } else { "dense" }
                    ),
                ));
            }
            (Kind::Layer, last) => {
                if let Some(last) = last {
                    last.gap_after = Some(index - last.norm.unwrap_or(last.layer) - 1);
                }
                blocks.push(Block {
                    layer: index,
                    norm: None,
                    gap_after: None,
                });
            }
        }
    }
    Ok(blocks)
}

/// The batch-norm `prefix` (running statistics, γ and β if affine) as a map on `channels`.
fn batch_norm(file: &TensorFile, prefix: &str, channels: usize, eps: f64) -> Result<ChannelMap> {
    let read = |param: &str| file.read(&format!("{prefix}.{param}"), &[channels]);
    let mean = read("running_mean")?;
    let var = read("running_var")?;
    if let Some(i) = var.iter().position(|&v| v < 0.0) {
        return Err(file.tensor_error(
            &format!("{prefix}.running_var"),
            format!("value {} at index {i} is negative (a variance)", var[i]),
        ));
    }
    let optional = |param: &str, default: f32| -> Result<Vec<f32>> {
        Ok(file
            .read_optional(&format!("{prefix}.{param}"), &[channels])?
            .unwrap_or_else(|| vec![default; channels]))
    };
    let (gamma, beta) = (optional("weight", 1.0)?, optional("bias", 0.0)?);
    Ok(ChannelMap::batch_norm(&gamma, &beta, &mean, &var, eps))
}

/// Folds the batch-norm `prefix` into `layer` (the conv or dense layer before it).
fn fold_norm(file: &TensorFile, prefix: &str, layer: &mut Layer, eps: f64) -> Result<()> {
    let channels = match layer {
        Layer::Conv(p) => p.cout,
        Layer::Dense(p) => p.outputs,
        Layer::Pool | Layer::Flatten => 0,
    };
    let map = batch_norm(file, prefix, channels, eps)?;
    if fold_into(layer, &map) {
        Ok(())
    } else {
        Err(file.tensor_error(
            &format!("{prefix}.running_var"),
            "folding this batch-norm into the layer before it gives values that are not finite \
             (a variance near −ε or an extreme γ)",
        ))
    }
}

/// `name`'s shape, which must have `rank` dims; `expected` describes it for the error.
fn shape_of_rank(file: &TensorFile, name: &str, rank: usize, expected: &str) -> Result<Vec<usize>> {
    let shape = file.shape(name)?;
    if shape.len() != rank || shape.contains(&0) {
        return Err(file.tensor_error(name, format!("expected {expected}, found shape {shape:?}")));
    }
    Ok(shape)
}

/// The conv stack: `features.N` convs, their batch-norms (folded) and the pools between them.
fn features(file: &TensorFile, eps: f64, folded: &mut usize) -> Result<(Vec<Layer>, usize)> {
    let modules = modules(file, "features")?;
    let blocks = blocks(file, "features", &modules)?;
    match blocks.first() {
        None => {
            return Err(file.tensor_error(
                "features.0.weight",
                "missing: no conv layers (`features.N.weight`)",
            ));
        }
        Some(first) if first.layer != 0 => {
            return Err(file.tensor_error(
                &format!("features.{}.weight", first.layer),
                "the first conv is not `features.0`",
            ));
        }
        _ => {}
    }
    let (mut layers, mut cin, mut pools) = (Vec::new(), 3, 0usize);
    for block in &blocks {
        let prefix = format!("features.{}", block.layer);
        let name = format!("{prefix}.weight");
        let shape = shape_of_rank(
            file,
            &name,
            4,
            &format!("a 3×3 conv weight [Cout, {cin}, 3, 3]"),
        )?;
        if shape[1..] != [cin, 3, 3] {
            return Err(file.tensor_error(
                &name,
                format!("expected a 3×3 conv weight [Cout, {cin}, 3, 3], found shape {shape:?}"),
            ));
        }
        let mut conv = Layer::Conv(file.conv(&prefix, cin, shape[0], block.norm.is_some())?);
        if let Some(norm) = block.norm {
            fold_norm(file, &format!("features.{norm}"), &mut conv, eps)?;
            *folded += 1;
        }
        layers.push(conv);
        cin = shape[0];
        // conv [, norm], ReLU, then the next conv (gap 1) or a pool first (gap 2); the stack ends
        // with a pool in every torchvision and timm VGG.
        match block.gap_after {
            Some(1) => {}
            Some(2) | None => {
                layers.push(Layer::Pool);
                pools += 1;
            }
            Some(gap) => {
                let end = block.norm.unwrap_or(block.layer);
                return Err(file.error(format!(
                    "features.{end} and features.{}: {gap} modules without parameters between \
                     them; expected a ReLU, or a ReLU and a max-pool (a VGG)",
                    end + gap + 1
                )));
            }
        }
    }
    Ok((layers, pools))
}

/// The input side that makes the last feature map `spatial × spatial` after `pools` pools.
fn input_side(file: &TensorFile, name: &str, spatial: usize, pools: usize) -> Result<usize> {
    let side = 1usize
        .checked_shl(pools as u32)
        .filter(|_| pools < usize::BITS as usize)
        .and_then(|f| f.checked_mul(spatial))
        .filter(|&side| side <= MAX_INPUT_SIDE);
    side.ok_or_else(|| {
        file.tensor_error(
            name,
            format!(
                "implies an input side of {spatial}·2^{pools} pixels ({spatial}×{spatial} after \
                 {pools} pools), over the {MAX_INPUT_SIDE} sglrp serves"
            ),
        )
    })
}

/// torchvision's `classifier.N` dense layers; returns them and the input side.
fn classifier(
    file: &TensorFile,
    channels: usize,
    pools: usize,
    eps: f64,
    folded: &mut usize,
) -> Result<(Vec<Layer>, usize)> {
    let modules = modules(file, "classifier")?;
    let blocks = blocks(file, "classifier", &modules)?;
    if blocks.is_empty() {
        return Err(file.tensor_error(
            "classifier.0.weight",
            "missing: no dense layers (`classifier.N.weight`)",
        ));
    }
    let (mut layers, mut side, mut inputs) = (Vec::new(), 0, 0);
    for (k, block) in blocks.iter().enumerate() {
        let prefix = format!("classifier.{}", block.layer);
        let name = format!("{prefix}.weight");
        let shape = shape_of_rank(file, &name, 2, "a dense weight [outputs, inputs]")?;
        if k == 0 {
            let spatial = spatial_side(file, &name, shape[1], channels)?;
            side = input_side(file, &name, spatial, pools)?;
        } else if shape[1] != inputs {
            return Err(file.tensor_error(
                &name,
                format!("expected shape [outputs, {inputs}], found {shape:?}"),
            ));
        }
        if block.gap_after == Some(0) {
            return Err(file.error(format!(
                "classifier.{} and classifier.{}: two dense layers with no ReLU between them",
                block.norm.unwrap_or(block.layer),
                block.norm.unwrap_or(block.layer) + 1
            )));
        }
        let mut dense = Layer::Dense(file.dense(&prefix, &shape, block.norm.is_some())?);
        if let Some(norm) = block.norm {
            fold_norm(file, &format!("classifier.{norm}"), &mut dense, eps)?;
            *folded += 1;
        }
        layers.push(dense);
        inputs = shape[0];
    }
    Ok((layers, side))
}

/// `s` such that `features = channels·s·s`: the side of the last feature map that the first dense
/// layer's `features` inputs imply.
fn spatial_side(file: &TensorFile, name: &str, features: usize, channels: usize) -> Result<usize> {
    let s = (features / channels).isqrt();
    if s == 0 || s.checked_mul(s).and_then(|n| n.checked_mul(channels)) != Some(features) {
        return Err(file.tensor_error(
            name,
            format!(
                "expected {channels}·s·s input features (s×s×{channels} after the last pool), \
                 found {features}"
            ),
        ));
    }
    Ok(s)
}

/// timm's head: `pre_logits.fc1` (a conv over the whole last map), `pre_logits.fc2` (1×1 conv),
/// `head.fc`. Returns the dense layers and the input side.
fn timm_head(file: &TensorFile, channels: usize, pools: usize) -> Result<(Vec<Layer>, usize)> {
    const HEAD: [&str; 3] = ["pre_logits.fc1", "pre_logits.fc2", "head.fc"];
    for name in file.names() {
        let known = HEAD
            .iter()
            .any(|p| name == format!("{p}.weight") || name == format!("{p}.bias"));
        if (name.starts_with("pre_logits.") || name.starts_with("head.")) && !known {
            return Err(file.tensor_error(
                name,
                "not a tensor of timm's VGG head (pre_logits.fc1, pre_logits.fc2, head.fc)",
            ));
        }
    }
    let (mut layers, mut side, mut inputs) = (Vec::new(), 0, 0);
    for (k, prefix) in HEAD.into_iter().enumerate() {
        let name = format!("{prefix}.weight");
        let shape = file.shape(&name)?;
        let expected = match k {
            0 => format!("a conv weight [outputs, {channels}, s, s] over the last s×s map"),
            1 => format!("a 1×1 conv weight [outputs, {inputs}, 1, 1]"),
            _ => format!("a dense weight [classes, {inputs}] (or [classes, {inputs}, 1, 1])"),
        };
        let fits = match (k, shape.as_slice()) {
            (0, &[o, c, kh, kw]) => o > 0 && c == channels && kh == kw && kh > 0,
            (1, &[o, i, 1, 1]) => o > 0 && i == inputs,
            (2, &[o, i]) | (2, &[o, i, 1, 1]) => o > 0 && i == inputs,
            _ => false,
        };
        if !fits {
            return Err(
                file.tensor_error(&name, format!("expected {expected}, found shape {shape:?}"))
            );
        }
        if k == 0 {
            side = input_side(file, &name, shape[2], pools)?;
        }
        layers.push(Layer::Dense(file.dense(prefix, &shape, false)?));
        inputs = shape[0];
    }
    Ok((layers, side))
}

/// A torchvision or timm VGG and the name of its architecture (`vgg16_bn`); `eps` is the
/// batch-norms' ε.
pub(super) fn load(
    file: &TensorFile,
    origin: Origin,
    eps: f64,
    notes: &mut Vec<String>,
) -> Result<(Model, String)> {
    let mut folded = 0;
    let (mut layers, pools) = features(file, eps, &mut folded)?;
    let channels = match layers.iter().rev().find_map(|l| match l {
        Layer::Conv(p) => Some(p.cout),
        _ => None,
    }) {
        Some(c) => c,
        None => return Err(file.error("no conv layers")),
    };
    let (head, side) = match origin {
        Origin::Torchvision => classifier(file, channels, pools, eps, &mut folded)?,
        Origin::Timm => timm_head(file, channels, pools)?,
    };
    let ignored: Vec<String> = file
        .names()
        .filter(|n| {
            !["features.", "classifier.", "pre_logits.", "head."]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .map(|n| format!("`{}`", file.original(n)))
        .collect();
    if !ignored.is_empty() {
        notes.push(format!(
            "ignored {} tensor{} that are not part of a VGG: {}",
            ignored.len(),
            if ignored.len() == 1 { "" } else { "s" },
            ignored
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
                + if ignored.len() > 3 { ", …" } else { "" }
        ));
    }
    layers.push(Layer::Flatten);
    layers.extend(head);
    let specs: Vec<LayerSpec> = layers.iter().map(Layer::spec).collect();
    reorder_flatten(&mut layers, &layer_dims(&specs, side), FlattenOrder::Chw);
    let classes = match layers.last() {
        Some(Layer::Dense(p)) => p.outputs,
        _ => 0,
    };
    let architecture = match vgg_name(&specs) {
        Some(name) if folded > 0 => format!("{name}_bn"),
        Some(name) => name.to_string(),
        None => format!(
            "VGG-like ({} convs, {} pools{})",
            specs
                .iter()
                .filter(|s| matches!(s, LayerSpec::Conv(_)))
                .count(),
            pools,
            if folded > 0 { ", batch-norm" } else { "" }
        ),
    };
    if folded > 0 {
        notes.push(format!(
            "folded {folded} batch-norm{} into the layer before each (ε = {eps:e})",
            if folded == 1 { "" } else { "s" }
        ));
    }
    let names = if classes == 1000 {
        notes.push("class names: the bundled ImageNet-1k list (1000 outputs)".into());
        imagenet_classes()
    } else {
        Model::default_classes(classes)
    };
    let model = Model {
        name: format!("{} {architecture}", origin.name()),
        layers,
        input_side: side,
        preprocess: Preprocess::torchvision(),
        classes: names,
    };
    Ok((model, architecture))
}
