//! Writing a model in sglrp's own format (README, "Model files"), atomically.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;

use super::{Layer, LayerSpec, Model};
use crate::error::{Error, Result};

/// The dtype tensors are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    fn encode(self, values: &[f32]) -> (safetensors::Dtype, Vec<u8>) {
        match self {
            Dtype::F32 => (
                safetensors::Dtype::F32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Dtype::F16 => (
                safetensors::Dtype::F16,
                values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
            Dtype::Bf16 => (
                safetensors::Dtype::BF16,
                values
                    .iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
        }
    }
}

impl Model {
    /// Writes the model in the own format (flatten order `hwc`, the engine's), through a temporary
    /// file renamed into place so that no reader ever sees a partial file.
    pub fn save(&self, path: impl AsRef<Path>, dtype: Dtype) -> Result<()> {
        let path = path.as_ref();
        let mut tensors: Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)> = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let (weight_shape, weight, bias) = match layer {
                Layer::Conv(p) => (vec![p.cout, p.cin, 3, 3], &p.weight, &p.bias),
                Layer::Dense(p) => (vec![p.outputs, p.inputs], &p.weight, &p.bias),
                Layer::Pool | Layer::Flatten => continue,
            };
            let (dt, bytes) = dtype.encode(weight);
            tensors.push((format!("layers.{i}.weight"), weight_shape, dt, bytes));
            let (dt, bytes) = dtype.encode(bias);
            tensors.push((format!("layers.{i}.bias"), vec![bias.len()], dt, bytes));
        }
        let views = tensors
            .iter()
            .map(|(name, shape, dt, bytes)| {
                TensorView::new(*dt, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| Error::weights(path, format!("tensor {name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = HashMap::from([
            ("sglrp.format".to_string(), "1".to_string()),
            ("sglrp.layers".into(), LayerSpec::format_list(&self.specs())),
            ("sglrp.input_size".into(), self.input_side.to_string()),
            ("sglrp.flatten".into(), "hwc".into()),
            ("sglrp.preprocess".into(), self.preprocess.to_metadata()),
            (
                "sglrp.classes".into(),
                serde_json::to_string(&self.classes).expect("strings serialise"),
            ),
            ("sglrp.name".into(), self.name.clone()),
        ]);
        let bytes = safetensors::serialize(views, Some(metadata))
            .map_err(|e| Error::weights(path, format!("cannot serialise: {e}")))?;
        crate::io::write_atomic(path, &bytes)
    }
}
