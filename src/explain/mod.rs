//! Explanations: heads (docs/method.md §Heads), presets (docs/method.md §Presets) and the relevance pass over a prepared
//! network. Several methods and targets for one image share one forward pass and, being one
//! batch of heads, the z⁺ denominators (docs/method.md §Properties).

mod baselines;
mod head;
mod method;
mod network;
mod passes;
mod preset;

pub use baselines::{grad_cam, random_map, upsample};
pub use head::{head, innvestigate_combine, innvestigate_heads, softmax};
pub use method::Method;
pub use network::{Formulation, Forward, ModelInfo, Network, Outputs, Rule};
pub use preset::Preset;

pub use crate::backend::ranking;
use std::hash::{Hash, Hasher};

use crate::backend::{Backend, HeadTarget, PassKey, resolve_target};
use crate::error::{Error, Result};
use method::Pass;
use passes::{PassPlan, PassResult};

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
    /// names the same methods in the same order (targets may differ). One forward pass, and one
    /// backward pass per kind of pass for all requests, queued on the backend with nothing
    /// downloaded in between ([`Backend::run_pass`]: on the CUDA backend one CUDA graph per shape
    /// of work, captured once and replayed). The `innvestigate` preset's heads need the logits
    /// on the host; its passes run one by one.
    pub fn explain(
        &self,
        input: &[f32],
        requests: &[Vec<Request>],
        preset: Preset,
    ) -> Result<Vec<ImageResult>> {
        self.explain_finish(self.explain_start(input, requests, preset)?)
    }

    /// [`Network::explain`] without waiting for the results: submit the next batch before
    /// [`Network::explain_finish`]ing this one, and a backend with copy streams uploads the next
    /// batch and downloads this one's results while the other computes.
    pub fn explain_start(
        &self,
        input: &[f32],
        requests: &[Vec<Request>],
        preset: Preset,
    ) -> Result<Pending<B>> {
        if preset.two_pass() {
            let fwd = self.forward_for(input, preset)?;
            return Ok(Pending::Done(self.explain_forward(&fwd, requests, preset)?));
        }
        let n = self.check_input(input)?;
        let wanted = self.check_requests(n, requests)?;
        let plans = self.plan(requests, &wanted, preset);
        let mut inputs = vec![input];
        inputs.extend(plans.iter().flatten().filter_map(PassPlan::table));
        let key = PassKey {
            batch: n,
            heads: requests[0].len(),
            pass: self.work_key(&requests[0], preset, &inputs),
        };
        let fused = self.formulation() == Formulation::Fused;
        let work = self.backend().submit_pass(Some(key), &inputs, &|bufs| {
            let x = self.backend().clone_buf(&bufs[0])?;
            let fwd = self.forward_from(x, n, fused.then_some(preset))?;
            self.queue(&fwd, &plans, &bufs[1..])
        })?;
        Ok(Pending::Queued(Box::new(Queued {
            n,
            requests: requests.to_vec(),
            wanted,
            plans,
            preset,
            work,
        })))
    }

    /// The results of a batch [`Network::explain_start`] submitted.
    pub fn explain_finish(&self, pending: Pending<B>) -> Result<Vec<ImageResult>> {
        match pending {
            Pending::Done(results) => Ok(results),
            Pending::Queued(q) => {
                let downloads = self.backend().finish_pass(q.work)?;
                self.assemble(q.n, &q.requests, &q.wanted, &q.plans, q.preset, downloads)
            }
        }
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

    /// Explanations from a forward pass already made, as [`Network::explain`] makes them.
    pub fn explain_forward(
        &self,
        fwd: &Forward<B>,
        requests: &[Vec<Request>],
        preset: Preset,
    ) -> Result<Vec<ImageResult>> {
        let wanted = self.check_requests(fwd.n, requests)?;
        let mut plans = self.plan(requests, &wanted, preset);
        if preset.two_pass()
            && let Some(relevance) = plans[0].as_mut()
        {
            self.host_heads(fwd, relevance, requests, &wanted)?;
        }
        let b = self.backend();
        let tables = plans
            .iter()
            .flatten()
            .filter_map(PassPlan::table)
            .map(|t| b.upload(t))
            .collect::<Result<Vec<_>>>()?;
        let downloads = self
            .queue(fwd, &plans, &tables)?
            .iter()
            .map(|buf| b.download(buf))
            .collect::<Result<Vec<_>>>()?;
        self.assemble(fwd.n, requests, &wanted, &plans, preset, downloads)
    }

    /// Every request list has `K ≥ 1` requests naming the same methods in the same order, one
    /// list per image, and every target and custom head fits the model. Returns the targets,
    /// `[i·K + j]` for request `j` of image `i`.
    fn check_requests(&self, n: usize, requests: &[Vec<Request>]) -> Result<Vec<HeadTarget>> {
        let k = requests.first().map_or(0, Vec::len);
        let same_methods = |r: &Vec<Request>| {
            r.len() == k
                && r.iter().zip(&requests[0]).all(|(a, b)| {
                    std::mem::discriminant(&a.method) == std::mem::discriminant(&b.method)
                })
        };
        if requests.len() != n || k == 0 || !requests.iter().all(same_methods) {
            return Err(Error::Request(format!(
                "expected, for each of the {n} images, a non-empty list of requests naming the same methods in the same order"
            )));
        }
        requests
            .iter()
            .flatten()
            .map(|r| self.check_target(r))
            .collect()
    }

    /// What a captured pass depends on besides its inputs' values: the methods, the preset, the
    /// network's and backend's settings, and the sizes of the inputs (targets and custom heads
    /// are in the head tables, read on every replay).
    fn work_key(&self, methods: &[Request], preset: Preset, inputs: &[&[f32]]) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        let names: Vec<&str> = methods.iter().map(|r| r.method.name()).collect();
        let sizes: Vec<usize> = inputs.iter().map(|i| i.len()).collect();
        format!(
            "{names:?} {preset:?} {:?} {} {} {:?} {:?} {sizes:?}",
            self.formulation(),
            self.relevance_layer(),
            self.gradcam_layer(),
            self.outputs(),
            self.backend().precision(),
        )
        .hash(&mut h);
        h.finish()
    }

    /// The results from the downloads of [`Network::queue`].
    fn assemble(
        &self,
        n: usize,
        requests: &[Vec<Request>],
        wanted: &[HeadTarget],
        plans: &[Option<PassPlan>],
        preset: Preset,
        downloads: Vec<Vec<f32>>,
    ) -> Result<Vec<ImageResult>> {
        let classes = self.num_classes();
        let k = requests[0].len();
        let mut downloads = downloads.into_iter();
        let logits = downloads.next().expect("the logits come first");
        let computed: Vec<Option<PassResult>> = plans
            .iter()
            .map(|plan| {
                plan.as_ref()
                    .map(|p| PassResult::read(p, n, &mut downloads))
            })
            .collect();
        let cam_activation = downloads.next();
        // Each request's target and head: from the first pass it needs (where the backend
        // resolved them), on the host for a method without a pass.
        let pass_of = |m: &Method| {
            let first = *m.passes().first()?;
            computed.iter().flatten().find(|p| p.pass == first)
        };
        let mut targets = Vec::with_capacity(n * k);
        let mut heads = Vec::with_capacity(n * k);
        for (i, (z, image_requests)) in logits.chunks(classes).zip(requests).enumerate() {
            for (j, request) in image_requests.iter().enumerate() {
                let (t, h) = match pass_of(&request.method) {
                    Some(pass) => (pass.target(i, j), pass.head(i, j).to_vec()),
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

        let side = self.info().input_side;
        let layer_shape = self.info().map_shape(self.relevance_layer());
        let layer_dims = self.info().dims[self.relevance_layer()].0;
        let mut results = Vec::with_capacity(n);
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

/// A batch of explanations under way ([`Network::explain_start`]).
pub enum Pending<B: Backend> {
    Queued(Box<Queued<B>>),
    /// Computed at once (the `innvestigate` preset).
    Done(Vec<ImageResult>),
}

/// What a submitted batch needs to read its results back.
pub struct Queued<B: Backend> {
    n: usize,
    requests: Vec<Vec<Request>>,
    wanted: Vec<HeadTarget>,
    plans: Vec<Option<PassPlan>>,
    preset: Preset,
    work: B::Pending,
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
