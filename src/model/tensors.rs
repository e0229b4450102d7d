//! The tensors of a parsed safetensors file, read as f32 with their shape, dtype and values
//! checked. Every error names the file and the tensor as the file spells it.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype as StDtype, SafeTensors};

use super::{ConvParams, DenseParams};
use crate::error::{Error, Result};

pub(super) struct TensorFile<'a> {
    pub path: &'a Path,
    tensors: SafeTensors<'a>,
    /// The names the layouts look tensors up by → the names in the file. They differ where a
    /// wrapper's prefix was stripped (`module.features.0.weight` → `features.0.weight`).
    names: BTreeMap<String, String>,
}

impl<'a> TensorFile<'a> {
    pub fn new(path: &'a Path, tensors: SafeTensors<'a>) -> Self {
        let names = tensors
            .names()
            .into_iter()
            .map(|n| (n.to_string(), n.to_string()))
            .collect();
        TensorFile {
            path,
            tensors,
            names,
        }
    }

    /// Looks every tensor up by `rename(name)` from now on; two names that become one are an
    /// error.
    pub fn rename(&mut self, rename: impl Fn(&str) -> String) -> Result<()> {
        let mut renamed = BTreeMap::new();
        for original in self.names.values() {
            if let Some(other) = renamed.insert(rename(original), original.clone()) {
                return Err(self.error(format!(
                    "tensors `{other}` and `{original}` have the same name once the wrapper's \
                     prefix is removed"
                )));
            }
        }
        self.names = renamed;
        Ok(())
    }

    /// The lookup names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// The name in the file of the tensor looked up as `name` (itself if there is none).
    pub fn original<'n>(&'n self, name: &'n str) -> &'n str {
        self.names.get(name).map_or(name, String::as_str)
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.view(name)
            .map(|t| t.shape().to_vec())
            .ok_or_else(|| self.tensor_error(name, "missing"))
    }

    fn view(&self, name: &str) -> Option<safetensors::tensor::TensorView<'a>> {
        self.tensors.tensor(self.names.get(name)?).ok()
    }

    /// Reads a tensor as f32, checking its shape, dtype and that every value is finite.
    pub fn read(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let err = |message: String| self.tensor_error(name, message);
        let view = self
            .view(name)
            .ok_or_else(|| err(format!("missing (expected shape {shape:?})")))?;
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

    /// Reads `name` if the file has it.
    pub fn read_optional(&self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.read(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A 3×3 conv `prefix.weight` (Cout, Cin, 3, 3) and `prefix.bias` (Cout); a missing bias is
    /// zero where `bias_optional` (a batch-norm follows and supplies one).
    pub fn conv(
        &self,
        prefix: &str,
        cin: usize,
        cout: usize,
        bias_optional: bool,
    ) -> Result<ConvParams> {
        Ok(ConvParams {
            cin,
            cout,
            weight: self.read(&format!("{prefix}.weight"), &[cout, cin, 3, 3])?,
            bias: self.bias(prefix, cout, bias_optional)?,
        })
    }

    /// A dense layer whose weight has `shape` in the file: `(outputs, inputs)`, or a conv form
    /// `(outputs, c, k, k)` with `inputs = c·k·k` (timm's).
    pub fn dense(&self, prefix: &str, shape: &[usize], bias_optional: bool) -> Result<DenseParams> {
        let weight_name = format!("{prefix}.weight");
        let outputs = shape.first().copied().unwrap_or(0);
        let inputs = shape
            .iter()
            .skip(1)
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| self.tensor_error(&weight_name, format!("shape {shape:?} overflows")))?;
        Ok(DenseParams {
            inputs,
            outputs,
            weight: self.read(&weight_name, shape)?,
            bias: self.bias(prefix, outputs, bias_optional)?,
        })
    }

    /// `prefix.bias` (`outputs`), or zeros if it is missing and `optional`.
    fn bias(&self, prefix: &str, outputs: usize, optional: bool) -> Result<Vec<f32>> {
        let name = format!("{prefix}.bias");
        match self.read_optional(&name, &[outputs])? {
            Some(bias) => Ok(bias),
            None if optional => Ok(vec![0.0; outputs]),
            None => self.read(&name, &[outputs]),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::weights(self.path, message)
    }

    pub fn tensor_error(&self, name: &str, message: impl Into<String>) -> Error {
        Error::tensor(self.path, self.original(name), message)
    }
}
