//! Explanations: heads (docs/method.md §Heads), presets (docs/method.md §Presets) and the relevance pass over a prepared
//! network. Several methods and targets for one image share one forward pass and, being one
//! batch of heads, the z⁺ denominators (docs/method.md §Properties).

mod baselines;
mod head;
mod method;
mod network;
mod preset;

pub use baselines::{grad_cam, random_map, upsample};
pub use head::{head, innvestigate_combine, innvestigate_heads, softmax};
pub use method::Method;
pub use network::{Formulation, Forward, ModelInfo, Network, Rule};
pub use preset::Preset;

use crate::backend::{Backend, Mask};
use crate::error::{Error, Result};
use method::Pass;

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
    /// The relevance put on the logits (for the `innvestigate` preset: the target pass's; for
    /// the baselines: the one-hot vector of the target, whose logit they differentiate).
    pub head: Vec<f32>,
    /// The map, `(C, H, W)`: for the LRP methods the signed input relevance, `C = 3` in the
    /// model's channel order (at [`Network::set_relevance_layer`]'s layer: the relevance at its
    /// input, `(C, H, W)` or `(F,)`); for the gradients the gradient; for Grad-CAM and Random
    /// `C = 1`.
    pub relevance: Vec<f32>,
    /// `C` of `relevance` (`F` for an `(F,)` map).
    pub channels: usize,
    /// The shape of `relevance`: `[C, H, W]` or `[F]`.
    pub shape: Vec<usize>,
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
        let fwd = self.forward_for(input, preset)?;
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

    /// Explanations from a forward pass already made. Every image's list names the same
    /// methods in the same order (targets may differ); each kind of backward pass runs once, for
    /// all the requests that need it.
    pub fn explain_forward(
        &self,
        fwd: &Forward<B>,
        requests: &[Vec<Request>],
        preset: Preset,
    ) -> Result<Vec<ImageResult>> {
        let classes = self.num_classes();
        let k = requests.first().map_or(0, Vec::len);
        let same_methods = |r: &Vec<Request>| {
            r.len() == k
                && r.iter().zip(&requests[0]).all(|(a, b)| {
                    std::mem::discriminant(&a.method) == std::mem::discriminant(&b.method)
                })
        };
        if requests.len() != fwd.n || k == 0 || !requests.iter().all(same_methods) {
            return Err(Error::Request(format!(
                "expected, for each of the {} images, a non-empty list of requests naming the same methods in the same order",
                fwd.n
            )));
        }
        let mut targets = Vec::with_capacity(fwd.n * k);
        for (z, image_requests) in fwd.logits.chunks(classes).zip(requests) {
            let order = ranking(z);
            for request in image_requests {
                targets.push(self.resolve(request, &order)?);
            }
        }
        // Heads: the LRP methods' (two per request for the `innvestigate` preset), and the
        // one-hot target for the gradient passes.
        let lrp_heads = |m: &Method, z: &[f32], t: usize| -> Vec<Vec<f32>> {
            if preset.two_pass() {
                let (target, others) = innvestigate_heads(m, z, t);
                vec![target, others]
            } else {
                vec![head(m, z, t)]
            }
        };
        let one_hot = |m: &Method, z: &[f32], t: usize| vec![head(m, z, t)];
        let passes = [
            (
                Pass::Relevance,
                Rule::Relevance(preset),
                self.relevance_layer(),
            ),
            (Pass::Gradient(Mask::Relu), Rule::Gradient(Mask::Relu), 0),
            (
                Pass::Gradient(Mask::Guided),
                Rule::Gradient(Mask::Guided),
                0,
            ),
            (
                Pass::Cam,
                Rule::Gradient(Mask::Relu),
                self.gradcam_layer() + 1,
            ),
        ];
        let mut computed = Vec::new();
        for (pass, rule, stop) in passes {
            let heads_of: &HeadsOf = if pass == Pass::Relevance {
                &lrp_heads
            } else {
                &one_hot
            };
            computed.push(self.run_pass(fwd, requests, &targets, pass, rule, stop, heads_of)?);
        }
        let [relevance, gradient, guided, cam] = computed.try_into().ok().expect("four passes");
        let cam_layer = self.gradcam_layer();
        let cam_activation = match &cam {
            Some(_) => Some(self.output(fwd, cam_layer)?),
            None => None,
        };

        let side = self.info().input_side;
        let layer_shape = self.info().map_shape(self.relevance_layer());
        let layer_dims = self.info().dims[self.relevance_layer()].0;
        let mut results = Vec::with_capacity(fwd.n);
        for (i, (z, image_requests)) in fwd.logits.chunks(classes).zip(requests).enumerate() {
            let mut explanations = Vec::with_capacity(k);
            for (j, request) in image_requests.iter().enumerate() {
                let t = targets[i * k + j];
                let chw = |rows: &[f32]| hwc_to_chw(rows, side, side, 3);
                let grad_cam_map = || {
                    let dims = self.info().dims[cam_layer].1;
                    let (act_len, g) = (dims.len(), cam.as_ref().expect("cam pass").rows(i, j));
                    let a =
                        &cam_activation.as_ref().expect("cam activation")[i * act_len..][..act_len];
                    upsample(&grad_cam(a, g, dims.c), dims.h, dims.w, side)
                };
                let (head_values, map) = match &request.method {
                    Method::Random { seed } => {
                        (head(&request.method, z, t), random_map(*seed, side))
                    }
                    Method::Gradient => (
                        head(&request.method, z, t),
                        chw(gradient.as_ref().expect("pass").rows(i, j)),
                    ),
                    Method::GuidedBackprop => (
                        head(&request.method, z, t),
                        chw(guided.as_ref().expect("pass").rows(i, j)),
                    ),
                    Method::GradCam => (head(&request.method, z, t), grad_cam_map()),
                    Method::GuidedGradCam => {
                        let cam_map = grad_cam_map();
                        let mut map = chw(guided.as_ref().expect("pass").rows(i, j));
                        for channel in map.chunks_exact_mut(side * side) {
                            channel.iter_mut().zip(&cam_map).for_each(|(g, c)| *g *= c);
                        }
                        (head(&request.method, z, t), map)
                    }
                    _ => {
                        let rows = relevance.as_ref().expect("relevance pass").rows(i, j);
                        let plane = rows.len() / if preset.two_pass() { 2 } else { 1 };
                        let nhwc = if preset.two_pass() {
                            innvestigate_combine(&rows[..plane], &rows[plane..])
                        } else {
                            rows.to_vec()
                        };
                        let d = layer_dims;
                        let map = hwc_to_chw(&nhwc, d.h, d.w, d.c);
                        (lrp_heads(&request.method, z, t).swap_remove(0), map)
                    }
                };
                let shape = if request.method.passes().contains(&Pass::Relevance) {
                    layer_shape.clone()
                } else {
                    vec![request.method.channels(), side, side]
                };
                explanations.push(Explanation {
                    method: request.method.clone(),
                    target: t,
                    head: head_values,
                    channels: shape[0],
                    shape,
                    relevance: map,
                });
            }
            results.push(ImageResult {
                logits: z.to_vec(),
                probabilities: softmax(z),
                explanations,
            });
        }
        Ok(results)
    }

    /// One backward pass for every request whose method needs `pass`, with `heads_of` heads each.
    #[allow(clippy::too_many_arguments)]
    fn run_pass(
        &self,
        fwd: &Forward<B>,
        requests: &[Vec<Request>],
        targets: &[usize],
        pass: Pass,
        rule: Rule,
        stop: usize,
        heads_of: &HeadsOf,
    ) -> Result<Option<PassResult>> {
        let k = requests[0].len();
        let mut slots = Vec::with_capacity(k);
        let mut count = 0;
        for request in &requests[0] {
            let needed = request.method.passes().contains(&pass);
            slots.push(needed.then_some(count));
            count += usize::from(needed);
        }
        if count == 0 {
            return Ok(None);
        }
        let classes = self.num_classes();
        let mut values = Vec::new();
        for (i, z) in fwd.logits.chunks(classes).enumerate() {
            for j in (0..k).filter(|&j| slots[j].is_some()) {
                values.extend(heads_of(&requests[i][j].method, z, targets[i * k + j]).concat());
            }
        }
        let rows = values.len() / classes / fwd.n;
        let values = self.backward(fwd, rows, &values, rule, stop)?;
        Ok(Some(PassResult {
            map: values.len() / (fwd.n * rows),
            stride: rows / count,
            rows_per_image: count,
            slots,
            values,
        }))
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

/// `(H, W, C)` → `(C, H, W)`.
pub fn hwc_to_chw(hwc: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut chw = vec![0.0; hwc.len()];
    for (p, px) in hwc.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            chw[k * h * w + p] = v;
        }
    }
    chw
}

/// The heads one request contributes to a pass, from its method, the logits and its target.
type HeadsOf<'a> = dyn Fn(&Method, &[f32], usize) -> Vec<Vec<f32>> + 'a;

/// One backward pass's output, `(N·K_pass·stride, map)`: `stride` heads per request (two for
/// the `innvestigate` preset's target and others passes), `slots[j]` the position of request `j`
/// among the pass's requests.
struct PassResult {
    values: Vec<f32>,
    map: usize,
    stride: usize,
    rows_per_image: usize,
    slots: Vec<Option<usize>>,
}

impl PassResult {
    /// Request `j` of image `i`: its `stride` maps, concatenated.
    fn rows(&self, i: usize, j: usize) -> &[f32] {
        let slot = self.slots[j].expect("the request needs this pass");
        let row = (i * self.rows_per_image + slot) * self.stride;
        &self.values[row * self.map..][..self.stride * self.map]
    }
}
