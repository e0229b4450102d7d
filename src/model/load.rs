//! Loading safetensors files: torchvision VGG keys, timm `vgg16.tv_in1k` keys and sglrp's own
//! format (README, "Model files"). Every failure names the file, the tensor and what was expected.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype as StDtype, SafeTensors};

use super::{ConvParams, DenseParams, Dims, Layer, LayerSpec, Model, Preprocess, infer_dims};
use crate::error::{Error, Result};

pub(super) fn load(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let not_safetensors = |e: safetensors::SafeTensorError| {
        Error::weights(path, format!("not a valid safetensors file ({e})"))
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
    let file = File { path, tensors };
    let metadata = header.metadata().clone().unwrap_or_default();
    let model = if metadata.contains_key("sglrp.format") {
        own_format(&file, &metadata)?
    } else if file.has("pre_logits.fc1.weight") {
        torch_hub(&file, Origin::Timm)?
    } else if file.names().any(|n| n.starts_with("classifier.")) {
        torch_hub(&file, Origin::Torchvision)?
    } else {
        return Err(Error::weights(
            path,
            "not a VGG weights file: expected sglrp metadata (`sglrp.format`), torchvision keys \
             (`features.N.weight`, `classifier.N.weight`) or timm keys (`pre_logits.fc1.weight`, `head.fc.weight`)",
        ));
    };
    model
        .validate()
        .map_err(|e| Error::weights(path, e.to_string()))?;
    Ok(model)
}

/// A parsed safetensors file and its path, for error messages.
struct File<'a> {
    path: &'a Path,
    tensors: SafeTensors<'a>,
}

impl File<'_> {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(name, _)| name)
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.tensors
            .tensor(name)
            .map(|t| t.shape().to_vec())
            .map_err(|_| Error::tensor(self.path, name, "missing"))
    }

    /// Reads a tensor as f32, checking its shape, dtype and that every value is finite.
    fn read(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let err = |message: String| Error::tensor(self.path, name, message);
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| err(format!("missing (expected shape {shape:?})")))?;
        if view.shape() != shape {
            return Err(err(format!(
                "expected shape {shape:?}, found {:?}",
                view.shape()
            )));
        }
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            StDtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            StDtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            StDtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(err(format!(
                    "unsupported dtype {other:?} (expected F32, F16 or BF16)"
                )));
            }
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(format!(
                "value {} at flat index {i} is not finite",
                values[i]
            )));
        }
        Ok(values)
    }

    fn conv(&self, prefix: &str, cin: usize, cout: usize) -> Result<ConvParams> {
        Ok(ConvParams {
            cin,
            cout,
            weight: self.read(&format!("{prefix}.weight"), &[cout, cin, 3, 3])?,
            bias: self.read(&format!("{prefix}.bias"), &[cout])?,
        })
    }

    /// A dense layer; `shape` is the weight's shape in the file (2-D, or 4-D for timm's conv form).
    fn dense(&self, prefix: &str, shape: &[usize]) -> Result<DenseParams> {
        let (outputs, inputs) = (shape[0], shape[1..].iter().product());
        Ok(DenseParams {
            inputs,
            outputs,
            weight: self.read(&format!("{prefix}.weight"), shape)?,
            bias: self.read(&format!("{prefix}.bias"), &[outputs])?,
        })
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::weights(self.path, message)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Origin {
    Torchvision,
    Timm,
}

/// torchvision (`features.N`, `classifier.N`) and timm (`features.N`, `pre_logits.fc1/fc2`,
/// `head.fc`) VGGs: the architecture follows from the keys and shapes.
fn torch_hub(file: &File, origin: Origin) -> Result<Model> {
    let indexed = |prefix: &str| -> Vec<usize> {
        let mut found: Vec<usize> = file
            .names()
            .filter_map(|n| {
                n.strip_prefix(prefix)?
                    .strip_suffix(".weight")?
                    .parse()
                    .ok()
            })
            .collect();
        found.sort_unstable();
        found
    };
    if file
        .names()
        .any(|n| n.starts_with("features.") && n.ends_with("running_mean"))
    {
        return Err(file.error(
            "batch-norm directly after a conv (vgg*_bn) is not supported: SPEC §1 folds only batch-norms that follow a ReLU",
        ));
    }
    let convs = indexed("features.");
    if convs.is_empty() {
        return Err(Error::tensor(file.path, "features.0.weight", "missing"));
    }
    // torchvision's `features` is conv, ReLU, [pool,] conv, …: a gap of 3 indices holds a pool.
    let mut layers = Vec::new();
    let mut cin = 3;
    let mut pools = 0;
    for (k, &index) in convs.iter().enumerate() {
        let prefix = format!("features.{index}");
        let shape = file.shape(&format!("{prefix}.weight"))?;
        let cout = shape[0];
        layers.push(Layer::Conv(file.conv(&prefix, cin, cout)?));
        cin = cout;
        match convs.get(k + 1).map(|next| next - index) {
            Some(2) => {}
            Some(3) | None => {
                layers.push(Layer::Pool);
                pools += 1;
            }
            Some(_) => {
                return Err(file.error(format!(
                    "features.{index} and features.{}: expected conv, ReLU[, pool] between convs",
                    convs[k + 1]
                )));
            }
        }
    }
    layers.push(Layer::Flatten);
    let dense_prefixes: Vec<String> = match origin {
        Origin::Torchvision => indexed("classifier.")
            .into_iter()
            .map(|i| format!("classifier.{i}"))
            .collect(),
        Origin::Timm => ["pre_logits.fc1", "pre_logits.fc2", "head.fc"]
            .map(String::from)
            .to_vec(),
    };
    let mut side = None;
    for (k, prefix) in dense_prefixes.iter().enumerate() {
        let shape = file.shape(&format!("{prefix}.weight"))?;
        let dense = if k == 0 {
            // The first dense layer's width fixes the spatial side of the last feature map.
            let inputs: usize = shape[1..].iter().product();
            let spatial = ((inputs / cin.max(1)) as f64).sqrt().round() as usize;
            if shape.len() < 2 || spatial == 0 || spatial * spatial * cin != inputs {
                return Err(Error::tensor(
                    file.path,
                    format!("{prefix}.weight"),
                    format!(
                        "expected {cin}·s·s input features (s×s×{cin} after the last pool), found shape {shape:?}"
                    ),
                ));
            }
            side = Some(spatial << pools);
            file.dense(prefix, &shape)?
        } else {
            let inputs = match layers.last() {
                Some(Layer::Dense(p)) => p.outputs,
                _ => unreachable!("dense layers follow the first one"),
            };
            let expected = match origin {
                Origin::Timm if k == 1 => vec![shape[0], inputs, 1, 1],
                _ => vec![shape[0], inputs],
            };
            if shape != expected {
                return Err(Error::tensor(
                    file.path,
                    format!("{prefix}.weight"),
                    format!("expected shape {expected:?}, found {shape:?}"),
                ));
            }
            file.dense(prefix, &shape)?
        };
        layers.push(Layer::Dense(dense));
    }
    let side = side.ok_or_else(|| Error::tensor(file.path, "classifier.0.weight", "missing"))?;
    reorder_flatten(&mut layers, side, FlattenOrder::Chw);
    let classes = match layers.last() {
        Some(Layer::Dense(p)) => Model::default_classes(p.outputs),
        _ => unreachable!(),
    };
    Ok(Model {
        name: match origin {
            Origin::Torchvision => "torchvision VGG".into(),
            Origin::Timm => "timm VGG".into(),
        },
        layers,
        input_side: side,
        preprocess: Preprocess::torchvision(),
        classes,
    })
}

/// sglrp's own format: the metadata describes the network, tensors are `layers.i.*`.
fn own_format(file: &File, metadata: &HashMap<String, String>) -> Result<Model> {
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
    let side: usize = get("sglrp.input_size")?.trim().parse().map_err(|_| {
        file.error("metadata `sglrp.input_size`: expected the input side in pixels, e.g. `224`")
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
            LayerSpec::Conv(cout) => layers.push(Layer::Conv(file.conv(&prefix, input.c, cout)?)),
            LayerSpec::Dense(n) => {
                layers.push(Layer::Dense(file.dense(&prefix, &[n, input.len()])?))
            }
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
    reorder_flatten(&mut layers, side, order);
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

#[derive(Clone, Copy, PartialEq)]
enum FlattenOrder {
    Chw,
    Hwc,
}

/// Permutes the columns of the dense layer after `flatten` from the file's order into the
/// engine's (H, W, C) order.
fn reorder_flatten(layers: &mut [Layer], side: usize, order: FlattenOrder) {
    if order == FlattenOrder::Hwc {
        return;
    }
    let specs: Vec<LayerSpec> = layers.iter().map(Layer::spec).collect();
    let dims = infer_dims(&specs, side).expect("validated before");
    let Some(flatten) = specs.iter().position(|s| *s == LayerSpec::Flatten) else {
        return;
    };
    let Dims { h, w, c } = dims[flatten].0;
    if let Some(Layer::Dense(dense)) = layers.get_mut(flatten + 1) {
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
}

/// Folds `a ↦ scale·a + shift` (per channel or feature) into the next conv/dense layer, at
/// position `next` or after a flatten there (SPEC §1): W' = W·diag(scale), b' = W·shift + b.
/// For a conv, zero padding is not shifted, so the fold is exact only away from the border.
fn fold_affine(layers: &mut [Layer], next: usize, scale: &[f32], shift: &[f32]) {
    let target = if matches!(layers[next], Layer::Flatten) {
        next + 1
    } else {
        next
    };
    let features = scale.len();
    match &mut layers[target] {
        Layer::Dense(p) => {
            for (row, b) in p.weight.chunks_exact_mut(p.inputs).zip(&mut p.bias) {
                let mut add = 0.0f64;
                for (j, w) in row.iter_mut().enumerate() {
                    add += *w as f64 * shift[j % features] as f64;
                    *w *= scale[j % features];
                }
                *b += add as f32;
            }
        }
        Layer::Conv(p) => {
            for (row, b) in p.weight.chunks_exact_mut(p.cin * 9).zip(&mut p.bias) {
                let mut add = 0.0f64;
                for (j, w) in row.iter_mut().enumerate() {
                    add += *w as f64 * shift[j / 9] as f64;
                    *w *= scale[j / 9];
                }
                *b += add as f32;
            }
        }
        _ => unreachable!("infer_dims allows affine only before conv/dense"),
    }
}
