//! Explanations: heads (SPEC §3), presets (SPEC §5) and the relevance pass over a prepared
//! network. Several methods and targets for one image share one forward pass and, being one
//! batch of heads, the z⁺ denominators (SPEC §7).

mod head;
mod network;
mod preset;

pub use head::{Method, head, innvestigate_combine, innvestigate_heads, softmax};
pub use network::{Forward, ModelInfo, Network, Rule};
pub use preset::Preset;

use crate::backend::Backend;
use crate::error::{Error, Result};

/// Which class an explanation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A class index.
    Class(usize),
    /// The class ranked `k`-th by the model for this image (1 = top-1).
    Rank(usize),
}

/// One explanation to compute for an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: Method,
    pub target: Target,
}

impl Request {
    pub fn new(method: Method, target: Target) -> Self {
        Request { method, target }
    }
}

/// One computed explanation.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub method: Method,
    /// The target class (for a custom head: the class the request named).
    pub target: usize,
    /// The relevance put on the logits (for the `innvestigate` preset: the target pass's).
    pub head: Vec<f32>,
    /// Signed input relevance, `(3, H, W)`, channels in the model's order.
    pub relevance: Vec<f32>,
}

/// Everything computed for one image.
#[derive(Clone, Debug)]
pub struct ImageResult {
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
    pub explanations: Vec<Explanation>,
}

/// Classes ordered by logit, highest first (ties: lower index first).
pub fn ranking(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
}

impl<B: Backend> Network<B> {
    /// Classifies `input` `(N, S, S, 3)`; returns the logits of each image.
    pub fn classify(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let fwd = self.forward(input)?;
        Ok(fwd
            .logits
            .chunks(self.num_classes())
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Explains every image of `input` `(N, S, S, 3)` with its own list of requests; every list
    /// must have the same length. One forward pass, one backward pass for all requests.
    pub fn explain(
        &self,
        input: &[f32],
        requests: &[Vec<Request>],
        preset: Preset,
    ) -> Result<Vec<ImageResult>> {
        let fwd = self.forward(input)?;
        self.explain_forward(&fwd, requests, preset)
    }

    /// [`Network::explain`] with the same requests for every image.
    pub fn explain_each(
        &self,
        input: &[f32],
        requests: &[Request],
        preset: Preset,
    ) -> Result<Vec<ImageResult>> {
        let n = input.len() / self.info().input_len().max(1);
        self.explain(input, &vec![requests.to_vec(); n], preset)
    }

    /// Explanations from a forward pass already made.
    pub fn explain_forward(
        &self,
        fwd: &Forward<B>,
        requests: &[Vec<Request>],
        preset: Preset,
    ) -> Result<Vec<ImageResult>> {
        let classes = self.num_classes();
        let k = requests.first().map_or(0, Vec::len);
        if requests.len() != fwd.n || k == 0 || requests.iter().any(|r| r.len() != k) {
            return Err(Error::Request(format!(
                "expected the same non-zero number of requests for each of the {} images",
                fwd.n
            )));
        }
        // Heads, image-major: (N, K·passes, classes).
        let passes = if preset.two_pass() { 2 } else { 1 };
        let mut targets = Vec::with_capacity(fwd.n * k);
        let mut head_values = Vec::with_capacity(fwd.n * k * passes * classes);
        for (z, image_requests) in fwd.logits.chunks(classes).zip(requests) {
            let order = ranking(z);
            for request in image_requests {
                let t = self.resolve(request, &order)?;
                targets.push(t);
                if preset.two_pass() {
                    let (target, others) = innvestigate_heads(&request.method, z, t);
                    head_values.extend(target);
                    head_values.extend(others);
                } else {
                    head_values.extend(head(&request.method, z, t));
                }
            }
        }
        let relevance = self.backward(fwd, k * passes, &head_values, Rule::Relevance(preset), 0)?;
        let side = self.info().input_side;
        let map = side * side * 3;
        let mut results = Vec::with_capacity(fwd.n);
        for (i, (z, image_requests)) in fwd.logits.chunks(classes).zip(requests).enumerate() {
            let explanations = image_requests
                .iter()
                .enumerate()
                .map(|(j, request)| {
                    let row = (i * k + j) * passes;
                    let target = &relevance[row * map..][..map];
                    let nhwc = if preset.two_pass() {
                        innvestigate_combine(target, &relevance[(row + 1) * map..][..map])
                    } else {
                        target.to_vec()
                    };
                    Explanation {
                        method: request.method.clone(),
                        target: targets[i * k + j],
                        head: head_values[row * classes..][..classes].to_vec(),
                        relevance: hwc_to_chw(&nhwc, side, side),
                    }
                })
                .collect();
            results.push(ImageResult {
                logits: z.to_vec(),
                probabilities: softmax(z),
                explanations,
            });
        }
        Ok(results)
    }

    fn resolve(&self, request: &Request, order: &[usize]) -> Result<usize> {
        let classes = self.num_classes();
        if let Method::Custom(v) = &request.method
            && v.len() != classes
        {
            return Err(Error::Request(format!(
                "a custom head has {} values; the model has {classes} classes",
                v.len()
            )));
        }
        match request.target {
            Target::Class(c) if c < classes => Ok(c),
            Target::Class(c) => Err(Error::Request(format!(
                "target class {c} is out of range (the model has {classes} classes: 0‥{})",
                classes - 1
            ))),
            Target::Rank(r) if (1..=classes).contains(&r) => Ok(order[r - 1]),
            Target::Rank(r) => Err(Error::Request(format!(
                "target top{r} is out of range (the model has {classes} classes)"
            ))),
        }
    }
}

/// `(H, W, 3)` → `(3, H, W)`.
pub fn hwc_to_chw(hwc: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut chw = vec![0.0; hwc.len()];
    for (p, px) in hwc.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * h * w + p] = px[c];
        }
    }
    chw
}
