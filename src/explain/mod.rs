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
pub use network::{Formulation, Forward, ModelInfo, Network, Outputs, Rule};
pub use preset::Preset;

pub use crate::backend::ranking;
use crate::backend::{Backend, HeadSpec, HeadTarget, Mask, resolve_target};
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
    /// The heatmap `(H, W)` of a `[C, H, W]` map, when [`Network::set_outputs`] asks for one
    /// (for the LRP methods reduced on the backend; then `relevance` may be left empty).
    pub heatmap: Option<Vec<f32>>,
}

/// Everything computed for one image.
#[derive(Clone, Debug)]
pub struct ImageResult {
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
    pub explanations: Vec<Explanation>,
}

impl<B: Backend> Network<B> {
    /// Classifies `input` `(N, S, S, 3)`; returns the logits of each image.
    pub fn classify(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let fwd = self.forward(input)?;
        Ok(self
            .logits(&fwd)?
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
        let mut wanted = Vec::with_capacity(fwd.n * k);
        for image_requests in requests {
            for request in image_requests {
                wanted.push(self.check_target(request)?);
            }
        }
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
            computed.push(self.run_pass(fwd, requests, &wanted, pass, rule, stop)?);
        }
        let logits = self.logits(fwd)?;
        // Each request's target and head: from the first pass it needs (where the backend
        // resolved them), on the host for a method without a pass.
        let pass_of = |m: &Method| {
            let first = *m.passes().first()?;
            let at = passes.iter().position(|p| p.0 == first)?;
            computed[at].as_ref()
        };
        let mut targets = Vec::with_capacity(fwd.n * k);
        let mut heads = Vec::with_capacity(fwd.n * k);
        for (i, (z, image_requests)) in logits.chunks(classes).zip(requests).enumerate() {
            for (j, request) in image_requests.iter().enumerate() {
                let (t, h) = match pass_of(&request.method) {
                    Some(pass) => (pass.target(i, j), pass.head(i, j, classes).to_vec()),
                    None => {
                        let t = resolve_target(z, wanted[i * k + j]);
                        (t, head(&request.method, z, t))
                    }
                };
                targets.push(t);
                heads.push(h);
            }
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
        let mut heads = heads.into_iter();
        for (i, (z, image_requests)) in logits.chunks(classes).zip(requests).enumerate() {
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
                let map = match &request.method {
                    Method::Random { seed } => random_map(*seed, side),
                    Method::Gradient => chw(gradient.as_ref().expect("pass").rows(i, j)),
                    Method::GuidedBackprop => chw(guided.as_ref().expect("pass").rows(i, j)),
                    Method::GradCam => grad_cam_map(),
                    Method::GuidedGradCam => {
                        let cam_map = grad_cam_map();
                        let mut map = chw(guided.as_ref().expect("pass").rows(i, j));
                        for channel in map.chunks_exact_mut(side * side) {
                            channel.iter_mut().zip(&cam_map).for_each(|(g, c)| *g *= c);
                        }
                        map
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
                        hwc_to_chw(&nhwc, d.h, d.w, d.c)
                    }
                };
                let shape = if request.method.passes().contains(&Pass::Relevance) {
                    layer_shape.clone()
                } else {
                    vec![request.method.channels(), side, side]
                };
                let heatmap = match self.outputs().heatmap {
                    Some(kind) if shape.len() == 3 => relevance
                        .as_ref()
                        .filter(|_| request.method.passes().contains(&Pass::Relevance))
                        .and_then(|pass| pass.heatmap(i, j))
                        .or_else(|| Some(crate::heatmap::heatmap(&map, shape[0], kind))),
                    _ => None,
                };
                explanations.push(Explanation {
                    method: request.method.clone(),
                    target: t,
                    head: heads.next().expect("one head per request"),
                    channels: shape[0],
                    shape,
                    relevance: map,
                    heatmap,
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

    /// One backward pass for every request whose method needs `pass`: the heads are made on
    /// the backend from the logits there (for the `innvestigate` preset's two-pass relevance, on
    /// the host), so the pass never waits for the host between the forward and the backward.
    fn run_pass(
        &self,
        fwd: &Forward<B>,
        requests: &[Vec<Request>],
        wanted: &[HeadTarget],
        pass: Pass,
        rule: Rule,
        stop: usize,
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
        let b = self.backend();
        let classes = self.num_classes();
        let needed = |i: usize| {
            (0..k)
                .filter(|&j| slots[j].is_some())
                .map(move |j| (&requests[i][j].method, wanted[i * k + j]))
        };
        let (head, rows, targets) = if pass == Pass::Relevance
            && let Rule::Relevance(preset) = rule
            && preset.two_pass()
        {
            // Target and others heads per request, from the logits on the host.
            let logits = self.logits(fwd)?;
            let (mut values, mut targets) = (Vec::new(), Vec::new());
            for (i, z) in logits.chunks(classes).enumerate() {
                for (method, target) in needed(i) {
                    let t = resolve_target(z, target);
                    let (target_head, others) = innvestigate_heads(method, z, t);
                    values.extend(target_head.into_iter().chain(others));
                    targets.extend([t as u32; 2]);
                }
            }
            (b.upload(&values)?, 2 * count, Targets::Host(targets))
        } else {
            let (mut specs, mut custom) = (Vec::new(), Vec::new());
            for i in 0..fwd.n {
                for (method, target) in needed(i) {
                    specs.push(HeadSpec {
                        rule: method.head_rule(custom.len() / classes),
                        target,
                    });
                    if let Method::Custom(v) = method {
                        custom.extend_from_slice(v);
                    }
                }
            }
            let (head, targets) = b.heads(self.logits_buf(fwd), classes, &specs, &custom)?;
            (head, count, Targets::Backend(targets))
        };
        let out = self.backward_buf(fwd, rows, &head, rule, stop)?;
        // The relevance pass's heatmaps are reduced on the backend, unless the maps are
        // combined on the host first (two passes) or have no pixels (a dense layer's).
        let outputs = self.outputs();
        let device_heatmap = outputs.heatmap.filter(|_| {
            pass == Pass::Relevance && rows == count && self.info().map_shape(stop).len() == 3
        });
        let heatmaps = match device_heatmap {
            Some(kind) => {
                let channels = self.info().map_shape(stop)[0];
                Some(b.download(&b.heatmap(&out, channels, kind)?)?)
            }
            None => None,
        };
        let values = if device_heatmap.is_none() || outputs.relevance {
            b.download(&out)?
        } else {
            Vec::new()
        };
        let targets = match targets {
            Targets::Host(t) => t,
            Targets::Backend(t) => b.download_index(&t)?,
        };
        let map_len = |v: &[f32]| v.len() / (fwd.n * rows);
        Ok(Some(PassResult {
            map: map_len(&values),
            stride: rows / count,
            rows_per_image: count,
            slots,
            heatmap: heatmaps.as_deref().map_or(0, map_len),
            heatmaps,
            values,
            heads: b.download(&head)?,
            targets,
        }))
    }

    /// The target a request names, checked against the model (a rank is resolved with the
    /// logits, where the heads are made).
    fn check_target(&self, request: &Request) -> Result<HeadTarget> {
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
            Target::Class(c) if c < classes => Ok(HeadTarget::Class(c)),
            Target::Class(c) => Err(Error::Request(format!(
                "target class {c} is out of range (the model has {classes} classes: 0‥{})",
                classes - 1
            ))),
            Target::Rank(r) if (1..=classes).contains(&r) => Ok(HeadTarget::Rank(r)),
            Target::Rank(r) => Err(Error::Request(format!(
                "target top{r} is out of range (the model has {classes} classes)"
            ))),
        }
    }
}

/// Where a pass's targets were resolved.
enum Targets<I> {
    Host(Vec<u32>),
    Backend(I),
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

/// One backward pass's output, `(N·K_pass·stride, map)`: `stride` heads per request (two for
/// the `innvestigate` preset's target and others passes), `slots[j]` the position of request `j`
/// among the pass's requests.
struct PassResult {
    /// The maps, `(rows, map)`; empty when only heatmaps were asked for.
    values: Vec<f32>,
    /// The maps' heatmaps, `(rows, heatmap)`, where the backend made them.
    heatmaps: Option<Vec<f32>>,
    heatmap: usize,
    /// The heads, `(rows, classes)`, and the target of each row.
    heads: Vec<f32>,
    targets: Vec<u32>,
    map: usize,
    stride: usize,
    rows_per_image: usize,
    slots: Vec<Option<usize>>,
}

impl PassResult {
    /// Request `j` of image `i`: its `stride` maps, concatenated.
    fn rows(&self, i: usize, j: usize) -> &[f32] {
        &self.values[self.row(i, j) * self.map..][..self.stride * self.map]
    }

    /// Request `j` of image `i`: its heatmap, where the backend made it.
    fn heatmap(&self, i: usize, j: usize) -> Option<Vec<f32>> {
        let h = self.heatmaps.as_ref()?;
        Some(h[self.row(i, j) * self.heatmap..][..self.heatmap].to_vec())
    }

    /// The first row of request `j` of image `i`.
    fn row(&self, i: usize, j: usize) -> usize {
        let slot = self.slots[j].expect("the request needs this pass");
        (i * self.rows_per_image + slot) * self.stride
    }

    /// Request `j` of image `i`: its (first) head.
    fn head(&self, i: usize, j: usize, classes: usize) -> &[f32] {
        &self.heads[self.row(i, j) * classes..][..classes]
    }

    /// Request `j` of image `i`: its target class.
    fn target(&self, i: usize, j: usize) -> usize {
        self.targets[self.row(i, j)] as usize
    }
}
