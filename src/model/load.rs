//! Loading safetensors files: torchvision and timm VGG state dicts ([`super::torch`]) and sglrp's
//! own format (README, "Model files"). Every failure names the file, the tensor or key and what
//! was expected.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;

use super::fold::{FlattenOrder, fold_affine, reorder_flatten};
use super::tensors::TensorFile;
use super::torch::{self, DEFAULT_BN_EPS};
use super::{
    Layer, LayerSpec, MAX_INPUT_SIDE, Model, Preprocess, infer_dims, layer_dims, vgg_name,
};
use crate::error::{Error, Result};

/// The layout a model file was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A torchvision VGG state dict (`features.N`, `classifier.N`).
    Torchvision,
    /// A timm VGG state dict (`features.N`, `pre_logits.fc1/fc2`, `head.fc`).
    Timm,
    /// sglrp's own format (`sglrp.*` metadata, `layers.i.*` tensors).
    Own,
}

/// What loading a model found and did, for a caller to show.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    pub layout: Layout,
    /// The architecture recognised: `vgg16_bn`, `vgg11`, or `VGG-like (…)`.
    pub architecture: String,
    /// Warnings where the result is still right, one line each: a wrapper prefix removed,
    /// batch-norms folded, class names supplied, tensors ignored.
    pub notes: Vec<String>,
}

/// The metadata key that sets the batch-norms' ε of a torchvision/timm state dict.
const BN_EPS_KEY: &str = "sglrp.bn_eps";

pub(super) fn load(path: &Path) -> Result<(Model, LoadReport)> {
    let bytes = super::file::read_safetensors(path)?;
    parse(&bytes, path)
}

/// Parses a whole safetensors file held in memory; `path` names it in errors.
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<(Model, LoadReport)> {
    let not_safetensors = |e: safetensors::SafeTensorError| {
        Error::weights(path, format!("not a valid safetensors file ({e})"))
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let mut file = TensorFile::new(path, tensors);
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut notes = Vec::new();
    let (model, layout, architecture) = if metadata.contains_key("sglrp.format") {
        let model = own_format(&file, &metadata)?;
        let architecture = vgg_name(&model.specs()).map_or("VGG-like".into(), String::from);
        (model, Layout::Own, architecture)
    } else if let Some(origin) = torch::detect(&mut file, &mut notes)? {
        let eps = bn_eps(&file, &metadata)?;
        let (model, architecture) = torch::load(&file, origin, eps, &mut notes)?;
        let layout = match origin {
            torch::Origin::Torchvision => Layout::Torchvision,
            torch::Origin::Timm => Layout::Timm,
        };
        (model, layout, architecture)
    } else {
        let some: Vec<String> = file.names().take(3).map(|n| format!("`{n}`")).collect();
        return Err(Error::weights(
            path,
            format!(
                "not a VGG weights file: found {}; expected sglrp metadata (`sglrp.format`), \
                 torchvision keys (`features.N.weight`, `classifier.N.weight`) or timm keys \
                 (`pre_logits.fc1.weight`, `head.fc.weight`)",
                if some.is_empty() {
                    "no tensors".to_string()
                } else {
                    format!("tensors {}", some.join(", "))
                }
            ),
        ));
    };
    model
        .validate()
        .map_err(|e| Error::weights(path, e.to_string()))?;
    Ok((
        model,
        LoadReport {
            layout,
            architecture,
            notes,
        },
    ))
}

/// `sglrp.bn_eps` if the file sets it, else PyTorch's default.
fn bn_eps(file: &TensorFile, metadata: &HashMap<String, String>) -> Result<f64> {
    let Some(text) = metadata.get(BN_EPS_KEY) else {
        return Ok(DEFAULT_BN_EPS);
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|e| e.is_finite() && *e > 0.0)
        .ok_or_else(|| {
            file.error(format!(
                "metadata `{BN_EPS_KEY}` is `{text}`: expected a positive number, e.g. `1e-5`"
            ))
        })
}

/// sglrp's own format: the metadata describes the network, tensors are `layers.i.*`.
fn own_format(file: &TensorFile, metadata: &HashMap<String, String>) -> Result<Model> {
    let get = |key: &str| -> Result<&str> {
        metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| file.error(format!("metadata `{key}` is missing")))
    };
    let meta_err = |key: &str, e: Error| file.error(format!("metadata `{key}`: {e}"));
    if get("sglrp.format")? != "1" {
        return Err(file.error(format!(
            "metadata `sglrp.format` is `{}`; this version reads format 1",
            get("sglrp.format")?
        )));
    }
    let specs =
        LayerSpec::parse_list(get("sglrp.layers")?).map_err(|e| meta_err("sglrp.layers", e))?;
    let side_text = get("sglrp.input_size")?;
    let side = side_text
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|s| (1..=MAX_INPUT_SIDE).contains(s))
        .ok_or_else(|| {
            file.error(format!(
                "metadata `sglrp.input_size` is `{side_text}`: expected the input side in pixels, \
                 1 to {MAX_INPUT_SIDE}, e.g. `224`"
            ))
        })?;
    let dims = infer_dims(&specs, side).map_err(|e| meta_err("sglrp.layers", e))?;
    let order = match get("sglrp.flatten")? {
        "chw" => FlattenOrder::Chw,
        "hwc" => FlattenOrder::Hwc,
        other => {
            return Err(file.error(format!(
                "metadata `sglrp.flatten` is `{other}`; expected `chw` (PyTorch) or `hwc` (Keras)"
            )));
        }
    };
    let preprocess =
        Preprocess::parse(get("sglrp.preprocess")?).map_err(|e| meta_err("sglrp.preprocess", e))?;

    let mut layers = Vec::new();
    let mut affines: Vec<(usize, Vec<f32>, Vec<f32>)> = Vec::new(); // (index in `layers`, scale, shift)
    for (i, (spec, (input, output))) in specs.iter().zip(&dims).enumerate() {
        let prefix = format!("layers.{i}");
        match *spec {
            LayerSpec::Conv(cout) => {
                layers.push(Layer::Conv(file.conv(&prefix, input.c, cout, false)?))
            }
            LayerSpec::Dense(n) => layers.push(Layer::Dense(file.dense(
                &prefix,
                &[n, input.len()],
                false,
            )?)),
            LayerSpec::Pool => layers.push(Layer::Pool),
            LayerSpec::Flatten => layers.push(Layer::Flatten),
            LayerSpec::Affine => {
                let features = output.c;
                let scale = file.read(&format!("{prefix}.scale"), &[features])?;
                let shift = file.read(&format!("{prefix}.shift"), &[features])?;
                affines.push((layers.len(), scale, shift));
            }
        }
    }
    let built: Vec<LayerSpec> = layers.iter().map(Layer::spec).collect();
    reorder_flatten(&mut layers, &layer_dims(&built, side), order);
    for (next, scale, shift) in affines {
        fold_affine(&mut layers, next, &scale, &shift);
    }
    let outputs = dims.last().map_or(0, |d| d.1.c);
    let classes = match metadata.get("sglrp.classes") {
        Some(json) => {
            let names: Vec<String> = serde_json::from_str(json).map_err(|e| {
                file.error(format!(
                    "metadata `sglrp.classes`: expected a JSON array of strings ({e})"
                ))
            })?;
            if names.len() != outputs {
                return Err(file.error(format!(
                    "metadata `sglrp.classes` has {} names, but the last layer has {outputs} outputs",
                    names.len()
                )));
            }
            names
        }
        None => Model::default_classes(outputs),
    };
    Ok(Model {
        name: metadata
            .get("sglrp.name")
            .cloned()
            .unwrap_or_else(|| file.path.display().to_string()),
        layers,
        input_side: side,
        preprocess,
        classes,
    })
}
