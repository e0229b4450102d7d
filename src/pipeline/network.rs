//! The device's part of `classify` and `explain`: a [`Network`] as a [`Compute`]. A result that
//! holds NaN or an infinity (weights that overflow in the forward pass) is an error for that
//! image, naming where it is, never a success.

use crate::backend::Backend;
use std::collections::VecDeque;

use crate::explain::{ImageResult, Network, Pending, Preset, Request};
use crate::model::Model;

use super::{Compute, Started};

/// What a prepared item gives the network: its pre-processed pixels, `(S, S, 3)`.
pub trait NetworkInput {
    fn network_input(&self) -> &[f32];
}

/// One image's result, or why it is unusable.
pub type ItemResult<T> = Result<T, String>;

fn joined<P: NetworkInput>(batch: &[&P]) -> Vec<f32> {
    batch
        .iter()
        .flat_map(|p| p.network_input().iter().copied())
        .collect()
}

/// Why `values` (named `what`) cannot be reported, if they hold a NaN or an infinity.
pub fn non_finite(what: &str, values: &[f32]) -> Option<String> {
    let nan = values.iter().filter(|v| v.is_nan()).count();
    let inf = values.iter().filter(|v| v.is_infinite()).count();
    (nan + inf > 0).then(|| {
        format!(
            "{what} hold {nan} NaN and {inf} infinite values of {} (the weights overflow in \
             the forward pass; docs/numerics.md)",
            values.len()
        )
    })
}

impl NetworkInput for Vec<f32> {
    fn network_input(&self) -> &[f32] {
        self
    }
}

/// About how many bytes a pass over `batch` images with `heads` explanations each holds at
/// once: every layer's activations (kept for the backward pass), and per head the relevance of
/// the widest layer twice (a layer's input and output), in f32.
pub fn batch_bytes(model: &Model, batch: usize, heads: usize) -> u64 {
    let dims = model.dims();
    let side = model.input_side as u64;
    let activations: u64 =
        dims.iter().map(|(_, out)| out.len() as u64).sum::<u64>() + side * side * 3;
    let widest = dims
        .iter()
        .map(|(input, out)| input.len().max(out.len()) as u64)
        .max()
        .unwrap_or(0);
    let per_image = activations.saturating_add((heads as u64).saturating_mul(2 * widest));
    per_image.saturating_mul(4).saturating_mul(batch as u64)
}

/// The logits of each image.
pub struct Classifier<B: Backend> {
    pub network: Network<B>,
}

impl<B: Backend, P: NetworkInput> Compute<P, ItemResult<Vec<f32>>> for Classifier<B> {
    fn compute(&mut self, batch: &[&P]) -> Result<Vec<ItemResult<Vec<f32>>>, String> {
        let logits = self
            .network
            .classify(&joined(batch))
            .map_err(|e| e.to_string())?;
        Ok(logits
            .into_iter()
            .map(|l| match non_finite("the logits", &l) {
                Some(why) => Err(why),
                None => Ok(l),
            })
            .collect())
    }
}

/// The same explanations of each image. Batches are started on the backend and finished in
/// order ([`Compute::start`]), so the copies of one overlap the pass of the next.
pub struct Explainer<B: Backend> {
    network: Network<B>,
    requests: Vec<Request>,
    preset: Preset,
    started: VecDeque<Pending<B>>,
}

impl<B: Backend> Explainer<B> {
    pub fn new(network: Network<B>, requests: Vec<Request>, preset: Preset) -> Self {
        Explainer {
            network,
            requests,
            preset,
            started: VecDeque::new(),
        }
    }

    fn lists(&self, n: usize) -> Vec<Vec<Request>> {
        vec![self.requests.clone(); n]
    }
}

impl<B: Backend, P: NetworkInput> Compute<P, ItemResult<ImageResult>> for Explainer<B> {
    fn compute(&mut self, batch: &[&P]) -> Result<Vec<ItemResult<ImageResult>>, String> {
        let results = self
            .network
            .explain(&joined(batch), &self.lists(batch.len()), self.preset)
            .map_err(|e| e.to_string())?;
        Ok(results.into_iter().map(checked).collect())
    }

    fn start(&mut self, batch: &[&P]) -> Started<ItemResult<ImageResult>> {
        let lists = self.lists(batch.len());
        match self
            .network
            .explain_start(&joined(batch), &lists, self.preset)
        {
            Ok(pending) => {
                self.started.push_back(pending);
                Started::Queued
            }
            Err(e) => Started::Done(Err(e.to_string())),
        }
    }

    fn finish(&mut self) -> Result<Vec<ItemResult<ImageResult>>, String> {
        let pending = self.started.pop_front().ok_or("no batch was started")?;
        let results = self
            .network
            .explain_finish(pending)
            .map_err(|e| e.to_string())?;
        Ok(results.into_iter().map(checked).collect())
    }
}

/// `result`, or the first of its logits and maps that is not finite, named.
fn checked(result: ImageResult) -> ItemResult<ImageResult> {
    if let Some(why) = non_finite("the logits", &result.logits) {
        return Err(why);
    }
    for e in &result.explanations {
        let what = format!("the {} map for class {}", e.method.name(), e.target);
        let heatmap = e.heatmap.as_deref().unwrap_or_default();
        if let Some(why) = non_finite(&what, &e.relevance).or_else(|| non_finite(&what, heatmap)) {
            return Err(why);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_counted_and_named() {
        assert_eq!(non_finite("x", &[1.0, -2.0]), None);
        let why = non_finite("the lrp map", &[f32::NAN, 1.0, f32::INFINITY, f32::NAN]).unwrap();
        assert!(
            why.starts_with("the lrp map hold 2 NaN and 1 infinite values of 4"),
            "{why}"
        );
    }
}
