//! The backward passes of one batch of requests: planned on the host from the requests, queued on
//! the backend with nothing downloaded in between (so that a backend can capture them together
//! with the forward pass, [`crate::backend::Backend::run_pass`]), then read back from what was
//! downloaded.

use super::head::innvestigate_heads;
use super::method::Pass;
use super::{Forward, Method, Network, Preset, Request, Rule};
use crate::backend::{Backend, HeadSpec, HeadTarget, Mask, head_table, resolve_target};
use crate::error::Result;
use crate::heatmap::HeatmapKind;

/// One backward pass, planned: the requests that need it and how their heads are made.
pub(super) struct PassPlan {
    pub pass: Pass,
    rule: Rule,
    stop: usize,
    /// Per request of an image, its position among the pass's requests.
    slots: Vec<Option<usize>>,
    /// The pass's requests per image.
    count: usize,
    /// Head rows per request: two for the `innvestigate` preset's relevance (target, others).
    stride: usize,
    heads: Heads,
    /// The heatmap made on the backend, and the channels it sums.
    heatmap: Option<(HeatmapKind, usize)>,
    /// Whether the maps themselves come back.
    values: bool,
}

/// How a pass's head rows are made.
enum Heads {
    /// On the backend, from this table ([`head_table`]).
    Table(Vec<f32>),
    /// On the host: the rows, and the target of each row.
    Host(Vec<f32>, Vec<f32>),
}

impl PassPlan {
    /// The head table the backend reads, for heads made there.
    pub fn table(&self) -> Option<&[f32]> {
        match &self.heads {
            Heads::Table(t) => Some(t),
            Heads::Host(..) => None,
        }
    }

    fn rows_per_image(&self) -> usize {
        self.count * self.stride
    }
}

impl<B: Backend> Network<B> {
    /// The passes the requests need, in a fixed order (relevance, gradient, guided gradient,
    /// Grad-CAM's gradient; `None` where no request needs one), each with its heads made on
    /// the backend. `wanted[i·K + j]` is the target of request `j` of image `i`.
    pub(super) fn plan(
        &self,
        requests: &[Vec<Request>],
        wanted: &[HeadTarget],
        preset: Preset,
    ) -> Vec<Option<PassPlan>> {
        let kinds = [
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
        let k = requests[0].len();
        let classes = self.num_classes();
        kinds
            .into_iter()
            .map(|(pass, rule, stop)| {
                let mut slots = Vec::with_capacity(k);
                let mut count = 0;
                for request in &requests[0] {
                    let needed = request.method.passes().contains(&pass);
                    slots.push(needed.then_some(count));
                    count += usize::from(needed);
                }
                if count == 0 {
                    return None;
                }
                let (mut specs, mut custom) = (Vec::new(), Vec::new());
                for (i, image_requests) in requests.iter().enumerate() {
                    for (j, request) in image_requests.iter().enumerate() {
                        if slots[j].is_none() {
                            continue;
                        }
                        let method = &request.method;
                        specs.push(HeadSpec {
                            rule: method.head_rule(custom.len() / classes),
                            target: wanted[i * k + j],
                        });
                        if let Method::Custom(v) = method {
                            custom.extend_from_slice(v);
                        }
                    }
                }
                // Heatmaps on the backend for maps with pixels that are not combined on the
                // host first (the two-pass preset's are).
                let shape = self.info().map_shape(stop);
                let outputs = self.outputs();
                let heatmap = outputs
                    .heatmap
                    .filter(|_| pass == Pass::Relevance && !preset.two_pass() && shape.len() == 3)
                    .map(|kind| (kind, shape[0]));
                Some(PassPlan {
                    pass,
                    rule,
                    stop,
                    slots,
                    count,
                    stride: 1,
                    heads: Heads::Table(head_table(&specs, &custom)),
                    heatmap,
                    values: heatmap.is_none() || outputs.relevance,
                })
            })
            .collect()
    }

    /// The `innvestigate` preset's relevance heads, a target and an others row per request,
    /// made on the host from the logits of `fwd`.
    pub(super) fn host_heads(
        &self,
        fwd: &Forward<B>,
        plan: &mut PassPlan,
        requests: &[Vec<Request>],
        wanted: &[HeadTarget],
    ) -> Result<()> {
        let k = requests[0].len();
        let logits = self.logits(fwd)?;
        let (mut values, mut targets) = (Vec::new(), Vec::new());
        for (i, z) in logits.chunks(self.num_classes()).enumerate() {
            for j in (0..k).filter(|&j| plan.slots[j].is_some()) {
                let t = resolve_target(z, wanted[i * k + j]);
                let (target, others) = innvestigate_heads(&requests[i][j].method, z, t);
                values.extend(target.into_iter().chain(others));
                targets.extend([t as f32; 2]);
            }
        }
        plan.heads = Heads::Host(values, targets);
        plan.stride = 2;
        Ok(())
    }

    /// Queues every planned pass after `fwd`, each table of [`PassPlan::table`] in `tables` in
    /// order, and returns what is to be downloaded: the logits; per pass its heads, targets,
    /// heatmaps (if made) and maps (if asked for); Grad-CAM's activation (if needed).
    pub(super) fn queue(
        &self,
        fwd: &Forward<B>,
        plans: &[Option<PassPlan>],
        tables: &[B::Buf],
    ) -> Result<Vec<B::Buf>> {
        let b = self.backend();
        let logits = self.logits_buf(fwd);
        let mut out = vec![b.clone_buf(logits)?];
        let mut tables = tables.iter();
        for plan in plans.iter().flatten() {
            let rows = fwd.n * plan.rows_per_image();
            let (head, targets) = match &plan.heads {
                Heads::Table(_) => {
                    let table = tables.next().expect("a table per pass that has one");
                    b.heads(logits, self.num_classes(), rows, table)?
                }
                Heads::Host(values, targets) => (b.upload(values)?, b.upload(targets)?),
            };
            let maps =
                self.backward_buf(fwd, plan.rows_per_image(), &head, plan.rule, plan.stop)?;
            out.extend([head, targets]);
            if let Some((kind, channels)) = plan.heatmap {
                out.push(b.heatmap(&maps, channels, kind)?);
            }
            if plan.values {
                out.push(maps);
            }
        }
        if plans.iter().flatten().any(|p| p.pass == Pass::Cam) {
            out.push(b.clone_buf(self.output_buf(fwd, self.gradcam_layer()))?);
        }
        Ok(out)
    }
}

/// One backward pass's results, `(N·count·stride, map)` rows: `stride` heads per request,
/// `slots[j]` the position of request `j` among the pass's requests.
pub(super) struct PassResult {
    pub pass: Pass,
    values: Vec<f32>,
    map: usize,
    heatmaps: Option<Vec<f32>>,
    heatmap: usize,
    heads: Vec<f32>,
    targets: Vec<f32>,
    stride: usize,
    rows_per_image: usize,
    slots: Vec<Option<usize>>,
}

impl PassResult {
    /// The results of `plan` over `n` images, from the downloads in [`Network::queue`]'s order.
    pub fn read(plan: &PassPlan, n: usize, downloads: &mut impl Iterator<Item = Vec<f32>>) -> Self {
        let mut next = || downloads.next().expect("a download per queued buffer");
        let rows = n * plan.rows_per_image();
        let (heads, targets) = (next(), next());
        let heatmaps = plan.heatmap.map(|_| next());
        let values = if plan.values { next() } else { Vec::new() };
        PassResult {
            pass: plan.pass,
            map: values.len() / rows,
            heatmap: heatmaps.as_ref().map_or(0, |h| h.len() / rows),
            values,
            heatmaps,
            heads,
            targets,
            stride: plan.stride,
            rows_per_image: plan.rows_per_image(),
            slots: plan.slots.clone(),
        }
    }

    /// Request `j` of image `i`: its `stride` maps, concatenated (empty when not asked for).
    pub fn rows(&self, i: usize, j: usize) -> &[f32] {
        &self.values[self.row(i, j) * self.map..][..self.stride * self.map]
    }

    /// The first row of request `j` of image `i`.
    fn row(&self, i: usize, j: usize) -> usize {
        let slot = self.slots[j].expect("the request needs this pass");
        i * self.rows_per_image + slot * self.stride
    }

    /// Request `j` of image `i`: its heatmap, where the backend made it.
    pub fn heatmap(&self, i: usize, j: usize) -> Option<Vec<f32>> {
        let h = self.heatmaps.as_ref()?;
        Some(h[self.row(i, j) * self.heatmap..][..self.heatmap].to_vec())
    }

    /// Request `j` of image `i`: its (first) head.
    pub fn head(&self, i: usize, j: usize) -> &[f32] {
        let classes = self.heads.len() / self.targets.len();
        &self.heads[self.row(i, j) * classes..][..classes]
    }

    /// Request `j` of image `i`: its target class.
    pub fn target(&self, i: usize, j: usize) -> usize {
        self.targets[self.row(i, j)] as usize
    }
}
