//! The model: a VGG-family network (docs/method.md §Network) with its weights on the host, its
//! pre-processing and its class names. Backends prepare their own weight layouts from it.

mod arch;
mod cost;
mod file;
mod fold;
mod imagenet;
mod load;
mod preprocess;
mod save;
mod tensors;
mod torch;

use std::path::Path;

pub use arch::{
    Dims, LayerSpec, MAX_INPUT_SIDE, infer_dims, layer_dims, layer_index, map_shape, vgg_name,
    vgg16,
};
pub use cost::{LayerCost, layer_costs};
pub use imagenet::imagenet_classes;
pub use load::{Layout, LoadReport};
pub use preprocess::{Channels, Preprocess, Resize};
pub use save::Dtype;

use crate::error::{Error, Result};

/// A 3×3 convolution's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvParams {
    pub cin: usize,
    pub cout: usize,
    pub weight: Vec<f32>, // (Cout, Cin, 3, 3)
    pub bias: Vec<f32>,   // (Cout)
}

/// A dense layer's parameters. The columns of a dense layer that follows `flatten` are in the
/// engine's flatten order (H, W, C), whatever the file's origin.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseParams {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>, // (outputs, inputs)
    pub bias: Vec<f32>,   // (outputs)
}

/// One layer of a built model. ReLUs are implied: after every conv, after every dense but the last.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Conv(ConvParams),
    Pool,
    Flatten,
    Dense(DenseParams),
}

/// A VGG-family classifier ready to be prepared by a backend.
#[derive(Clone, Debug)]
pub struct Model {
    pub name: String,
    pub layers: Vec<Layer>,
    pub input_side: usize,
    pub preprocess: Preprocess,
    pub classes: Vec<String>,
}

impl Layer {
    pub fn spec(&self) -> LayerSpec {
        match self {
            Layer::Conv(p) => LayerSpec::Conv(p.cout),
            Layer::Pool => LayerSpec::Pool,
            Layer::Flatten => LayerSpec::Flatten,
            Layer::Dense(p) => LayerSpec::Dense(p.outputs),
        }
    }
}

impl Model {
    /// Loads a safetensors file in any of the supported layouts (see README, "Model files").
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Ok(Model::load_reported(path)?.0)
    }

    /// [`Model::load`], with what the loader found and did (layout, architecture, notes to show).
    pub fn load_reported(path: impl AsRef<Path>) -> Result<(Model, LoadReport)> {
        load::load(path.as_ref())
    }

    /// Parses a whole safetensors file held in memory, as [`Model::load_reported`] reads one;
    /// `path` names it in errors.
    pub fn from_safetensors(bytes: &[u8], path: impl AsRef<Path>) -> Result<(Model, LoadReport)> {
        load::parse(bytes, path.as_ref())
    }

    pub fn specs(&self) -> Vec<LayerSpec> {
        self.layers.iter().map(Layer::spec).collect()
    }

    /// (input, output) dims of every layer, as the layers compute them ([`layer_dims`]); for a
    /// model that [`Model::validate`] accepts, those of [`infer_dims`].
    pub fn dims(&self) -> Vec<(Dims, Dims)> {
        layer_dims(&self.specs(), self.input_side)
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Display names of the layers as the paper and Keras name them: `conv3_2`, `pool3`, `fc1`.
    pub fn layer_names(&self) -> Vec<String> {
        let (mut block, mut conv, mut dense) = (1, 0, 0);
        self.layers
            .iter()
            .map(|layer| match layer {
                Layer::Conv(_) => {
                    conv += 1;
                    format!("conv{block}_{conv}")
                }
                Layer::Pool => {
                    let name = format!("pool{block}");
                    block += 1;
                    conv = 0;
                    name
                }
                Layer::Flatten => "flatten".into(),
                Layer::Dense(_) => {
                    dense += 1;
                    format!("fc{dense}")
                }
            })
            .collect()
    }

    /// Checks that parameters agree with the layer sequence and the input side, and that every
    /// parameter is finite. Loaders call it; so can code that builds a model by hand.
    pub fn validate(&self) -> Result<()> {
        let dims = infer_dims(&self.specs(), self.input_side)?;
        let product = |a: usize, b: usize, c: usize| a.checked_mul(b)?.checked_mul(c);
        for (i, (layer, (input, output))) in self.layers.iter().zip(&dims).enumerate() {
            let (weight, bias, shape_ok) = match layer {
                Layer::Conv(p) => (
                    &p.weight,
                    &p.bias,
                    p.cin == input.c && Some(p.weight.len()) == product(p.cout, p.cin, 9),
                ),
                Layer::Dense(p) => (
                    &p.weight,
                    &p.bias,
                    p.inputs == input.len()
                        && Some(p.weight.len()) == product(p.outputs, p.inputs, 1),
                ),
                _ => continue,
            };
            if !shape_ok || bias.len() != output.c {
                return Err(Error::Architecture(format!(
                    "layer {i} ({}): parameters do not fit its input {input}",
                    layer.spec()
                )));
            }
            if weight.iter().chain(bias).any(|v| !v.is_finite()) {
                return Err(Error::Architecture(format!(
                    "layer {i} ({}): parameters are not all finite",
                    layer.spec()
                )));
            }
        }
        if self.classes.len() != dims.last().map_or(0, |d| d.1.c) {
            return Err(Error::Architecture(format!(
                "{} class names for {} logits",
                self.classes.len(),
                dims.last().map_or(0, |d| d.1.c)
            )));
        }
        Ok(())
    }

    /// Default class names `class 0`, `class 1`, …
    pub fn default_classes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("class {i}")).collect()
    }

    /// Replaces the class names by `names`, read from `source` (named in errors): one per output,
    /// none empty.
    pub fn set_classes(&mut self, names: Vec<String>, source: &Path) -> Result<()> {
        let outputs = match self.layers.last() {
            Some(Layer::Dense(p)) => p.outputs,
            _ => self.classes.len(),
        };
        if names.len() != outputs {
            return Err(Error::Request(format!(
                "{}: {} class names, but the model has {outputs} outputs (expected one name per \
                 output, in output order)",
                source.display(),
                names.len()
            )));
        }
        if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
            return Err(Error::Request(format!(
                "{}: class name {i} is empty",
                source.display()
            )));
        }
        self.classes = names;
        Ok(())
    }
}
