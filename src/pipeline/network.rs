//! The device's part of `classify` and `explain`: a [`Network`] as a [`Compute`]. A result that
//! holds NaN or an infinity (weights that overflow in the forward pass) is an error for that
//! image, naming where it is, never a success.

use crate::backend::Backend;
use crate::explain::{ImageResult, Network, Preset, Request};

use super::Compute;

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

/// The same explanations of each image.
pub struct Explainer<B: Backend> {
    pub network: Network<B>,
    pub requests: Vec<Request>,
    pub preset: Preset,
}

impl<B: Backend, P: NetworkInput> Compute<P, ItemResult<ImageResult>> for Explainer<B> {
    fn compute(&mut self, batch: &[&P]) -> Result<Vec<ItemResult<ImageResult>>, String> {
        let results = self
            .network
            .explain_each(&joined(batch), &self.requests, self.preset)
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
        if let Some(why) = non_finite(&what, &e.relevance) {
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
