//! A model prepared on a backend: the forward pass, and one backward pass that serves both the
//! LRP rules (docs/method.md §Rules) and the plain gradient the baselines need (docs/evaluation.md).

use std::cell::OnceCell;

use crate::backend::{Backend, BiasMode, ConvShape, DenseShape, Mask, PoolShape, WeightSet};
use crate::error::{Error, Result};
use crate::explain::Preset;
use crate::heatmap::HeatmapKind;
use crate::model::{ConvParams, Dims, Layer, LayerSpec, Model, Preprocess, layer_index, map_shape};

/// What a network knows about its model once the weights live on the backend.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub name: String,
    pub specs: Vec<LayerSpec>,
    /// (input, output) dims of every layer.
    pub dims: Vec<(Dims, Dims)>,
    /// `conv1_1`, `pool1`, `fc1`, …
    pub layer_names: Vec<String>,
    pub input_side: usize,
    pub preprocess: Preprocess,
    pub classes: Vec<String>,
}

impl ModelInfo {
    pub fn input_len(&self) -> usize {
        self.input_side * self.input_side * 3
    }

    /// The shape of a map at the input of layer `i`: `(C, H, W)` (`(3, S, S)` at the image), or
    /// `(F,)` at a dense layer.
    pub fn map_shape(&self, i: usize) -> Vec<usize> {
        map_shape(self.specs[i], self.dims[i].0)
    }
}

enum Prepared<B: Backend> {
    Conv(B::Conv),
    Pool,
    Flatten,
    Dense(B::Dense),
}

/// The result of a forward pass, kept for the backward passes that share it.
pub struct Forward<B: Backend> {
    /// Number of images.
    pub n: usize,
    /// The logits `(N, classes)` on the host, downloaded when first asked for
    /// ([`Network::logits`]): a pass needs them only on the backend.
    logits: OnceCell<Vec<f32>>,
    input: OnceCell<Vec<f32>>, // (N, S, S, 3) on the host, downloaded when asked for
    x: B::Buf,                 // (N, S, S, 3)
    outputs: Vec<Option<B::Buf>>, // per layer, its output; `None` for flatten (same buffer)
    argmax: Vec<Option<B::Index>>, // per pool layer
    /// The fused pass's quotients, for one preset: per conv (but the first) and dense layer,
    /// `q = a′ / stab(z⁺)` (docs/method.md §Rules).
    quotients: Option<Quotients<B>>,
}

/// Per layer, `q = a′ / stab(z⁺)` of a preset's bias mode and stabiliser (`None` for pools,
/// flatten and the first conv, whose z^B rule needs no q).
struct Quotients<B: Backend> {
    preset: Preset,
    q: Vec<Option<B::Buf>>,
}

/// What the LRP methods' relevance pass brings back from the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outputs {
    /// The maps themselves ([`super::Explanation::relevance`]; empty when off).
    pub relevance: bool,
    /// Each map's heatmap, reduced on the backend ([`super::Explanation::heatmap`]).
    pub heatmap: Option<HeatmapKind>,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            relevance: true,
            heatmap: None,
        }
    }
}

/// How the relevance rule's backward pass is computed (both equal docs/method.md §Rules in exact
/// arithmetic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Formulation {
    /// The forward pass stores `q = a′ / stab(z⁺)` beside each output, and each layer's backward
    /// is one transposed W⁺ product whose epilogue multiplies by the q below.
    #[default]
    Fused,
    /// The readable per-op pass: the quotient convolution, then the transposed one times the
    /// activation. The oracle the fused pass is checked against.
    Reference,
}

/// A layer's output (`None` for flatten) and, for a pool, its argmax.
pub(crate) type LayerOutput<B> = (Option<<B as Backend>::Buf>, Option<<B as Backend>::Index>);

/// How a backward pass treats each layer.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// LRP: z^B on the first conv, z⁺ everywhere else, with the preset's bias and stabiliser.
    Relevance(Preset),
    /// The gradient, with the given ReLU backward.
    Gradient(Mask),
}

/// A model whose weights have been prepared on a backend.
pub struct Network<B: Backend> {
    backend: B,
    info: ModelInfo,
    layers: Vec<Prepared<B>>,
    /// The first conv as one z^B conv: weights [W⁺ | W⁻] over the input [x − l | x − h].
    zbox: B::Conv,
    /// The z^B bounds of the pre-processed input: the lower bound of each channel, then the upper.
    zbox_bounds: B::Buf,
    /// The conv layer whose ReLU output Grad-CAM uses (default: the last conv).
    cam_layer: usize,
    /// The layer at whose input the LRP methods take their relevance (0: the image).
    relevance_layer: usize,
    formulation: Formulation,
    outputs: Outputs,
}

impl<B: Backend> Network<B> {
    pub fn new(backend: B, model: &Model) -> Result<Self> {
        model.validate()?;
        let layers = model
            .layers
            .iter()
            .map(|layer| {
                Ok(match layer {
                    Layer::Conv(p) => Prepared::Conv(backend.prepare_conv(p)?),
                    Layer::Pool => Prepared::Pool,
                    Layer::Flatten => Prepared::Flatten,
                    Layer::Dense(p) => Prepared::Dense(backend.prepare_dense(p)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let Some(Layer::Conv(first)) = model.layers.first() else {
            unreachable!("validate() checks that the first layer is a conv");
        };
        let zbox = backend.prepare_conv(&zbox_params(first))?;
        let (low, high) = model.preprocess.bounds();
        let bounds: Vec<f32> = low.iter().chain(&high).copied().collect();
        let zbox_bounds = backend.upload(&bounds)?;
        let info = ModelInfo {
            name: model.name.clone(),
            specs: model.specs(),
            dims: model.dims(),
            layer_names: model.layer_names(),
            input_side: model.input_side,
            preprocess: model.preprocess.clone(),
            classes: model.classes.clone(),
        };
        let cam_layer = info
            .specs
            .iter()
            .rposition(|s| matches!(s, LayerSpec::Conv(_)))
            .expect("the first layer is a conv");
        Ok(Network {
            backend,
            info,
            layers,
            zbox,
            zbox_bounds,
            cam_layer,
            relevance_layer: 0,
            formulation: Formulation::Fused,
            outputs: Outputs::default(),
        })
    }

    /// Chooses how the relevance pass is computed (default: [`Formulation::Fused`]).
    pub fn set_formulation(&mut self, formulation: Formulation) {
        self.formulation = formulation;
    }

    pub fn formulation(&self) -> Formulation {
        self.formulation
    }

    /// Chooses what explanations bring back (default: the relevance maps, no heatmap).
    pub fn set_outputs(&mut self, outputs: Outputs) {
        self.outputs = outputs;
    }

    pub fn outputs(&self) -> Outputs {
        self.outputs
    }

    /// Chooses Grad-CAM's layer by name (`conv5_3`, see [`ModelInfo::layer_names`]).
    pub fn set_gradcam_layer(&mut self, name: &str) -> Result<()> {
        let convs: Vec<&String> = self
            .info
            .layer_names
            .iter()
            .zip(&self.info.specs)
            .filter(|(_, s)| matches!(s, LayerSpec::Conv(_)))
            .map(|(n, _)| n)
            .collect();
        let index = self.info.layer_names.iter().position(|n| n == name);
        match index {
            Some(i) if matches!(self.info.specs[i], LayerSpec::Conv(_)) => {
                self.cam_layer = i;
                Ok(())
            }
            _ => Err(Error::Request(format!(
                "Grad-CAM layer `{name}` is not a conv layer of this model (one of {})",
                convs
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Takes the LRP methods' relevance at the input of the layer `name` (see
    /// [`ModelInfo::layer_names`]; Zennit's and Captum's layer relevance), `a ⊙ c` there
    /// (docs/method.md §Rules), instead of at the image; `None`: at the image. The baselines keep
    /// their image-sized maps.
    pub fn set_relevance_layer(&mut self, name: Option<&str>) -> Result<()> {
        self.relevance_layer = match name {
            Some(name) => layer_index(&self.info.layer_names, name)?,
            None => 0,
        };
        Ok(())
    }

    /// The layer at whose input the LRP methods take their relevance (0: the image).
    pub fn relevance_layer(&self) -> usize {
        self.relevance_layer
    }

    /// Grad-CAM's layer (an index into the layers).
    pub fn gradcam_layer(&self) -> usize {
        self.cam_layer
    }

    /// Layer `i`'s output of a forward pass, on the host: `(N, dims of that output)`.
    pub fn output(&self, fwd: &Forward<B>, i: usize) -> Result<Vec<f32>> {
        self.backend.download(self.output_buf(fwd, i))
    }

    /// Layer `i`'s output of a forward pass, on the backend.
    pub(crate) fn output_buf<'f>(&self, fwd: &'f Forward<B>, i: usize) -> &'f B::Buf {
        last_output(&fwd.outputs[..=i]).unwrap_or(&fwd.x)
    }

    /// The pre-processed input of a forward pass, `(N, S, S, 3)`, on the host (downloaded once).
    pub fn input<'f>(&self, fwd: &'f Forward<B>) -> Result<&'f [f32]> {
        once(&fwd.input, || self.backend.download(&fwd.x))
    }

    /// The logits of a forward pass, `(N, classes)`, on the host (downloaded once).
    pub fn logits<'f>(&self, fwd: &'f Forward<B>) -> Result<&'f [f32]> {
        once(&fwd.logits, || self.backend.download(self.logits_buf(fwd)))
    }

    /// The logits of a forward pass on the backend: the last layer's output.
    pub fn logits_buf<'f>(&self, fwd: &'f Forward<B>) -> &'f B::Buf {
        last_output(&fwd.outputs).expect("the last layer is dense")
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, to change its settings ([`Backend::set_precision`]).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    pub fn num_classes(&self) -> usize {
        self.info.classes.len()
    }

    /// The forward pass over `input`, `(N, S, S, 3)` pre-processed.
    pub fn forward(&self, input: &[f32]) -> Result<Forward<B>> {
        self.forward_with(input, None)
    }

    /// The forward pass that also stores the fused relevance pass's quotients for `preset`
    /// (when the network uses [`Formulation::Fused`]): each conv and dense layer computes its
    /// output and `q` in one kernel.
    pub fn forward_for(&self, input: &[f32], preset: Preset) -> Result<Forward<B>> {
        let fused = self.formulation == Formulation::Fused;
        self.forward_with(input, fused.then_some(preset))
    }

    fn forward_with(&self, input: &[f32], preset: Option<Preset>) -> Result<Forward<B>> {
        let n = self.check_input(input)?;
        self.forward_from(self.backend.upload(input)?, n, preset)
    }

    /// Checks that `input` holds whole, finite images; returns how many.
    pub(crate) fn check_input(&self, input: &[f32]) -> Result<usize> {
        let per_image = self.info.input_len();
        if input.is_empty() || !input.len().is_multiple_of(per_image) {
            return Err(Error::Request(format!(
                "input has {} values; expected a multiple of {}×{}×3 = {per_image}",
                input.len(),
                self.info.input_side,
                self.info.input_side
            )));
        }
        if input.iter().any(|v| !v.is_finite()) {
            return Err(Error::Request(
                "input contains NaN or infinite values".into(),
            ));
        }
        Ok(input.len() / per_image)
    }

    /// The forward pass over `n` images already on the backend (see [`Network::forward_for`]).
    pub(crate) fn forward_from(
        &self,
        x: B::Buf,
        n: usize,
        preset: Option<Preset>,
    ) -> Result<Forward<B>> {
        let b = &self.backend;
        let mut outputs: Vec<Option<B::Buf>> = Vec::with_capacity(self.layers.len());
        let mut argmax = Vec::with_capacity(self.layers.len());
        let mut q = Vec::with_capacity(self.layers.len());
        for i in 0..self.layers.len() {
            let _range = b.range(&format!("forward/{}", self.info.layer_names[i]));
            let current = last_output(&outputs).unwrap_or(&x);
            let (out, idx, qi) = match preset {
                Some(p) if self.has_quotient(i) => {
                    let (y, qi) = self.run_dual(i, n, current, p)?;
                    (Some(y), None, Some(qi))
                }
                _ => {
                    let (out, idx) = self.run_layer(i, n, self.info.dims[i].0, current)?;
                    (out, idx, None)
                }
            };
            outputs.push(out);
            argmax.push(idx);
            q.push(qi);
        }
        Ok(Forward {
            n,
            logits: OnceCell::new(),
            input: OnceCell::new(),
            x,
            outputs,
            argmax,
            quotients: preset.map(|preset| Quotients { preset, q }),
        })
    }

    /// Whether layer `i` has a quotient in the fused pass: every conv but the first (z^B), and
    /// every dense layer.
    fn has_quotient(&self, i: usize) -> bool {
        match self.layers[i] {
            Prepared::Conv(_) => i > 0,
            Prepared::Dense(_) => true,
            Prepared::Pool | Prepared::Flatten => false,
        }
    }

    /// The dual forward of conv or dense layer `i` over its input `x`: (a′, q) for `preset`.
    fn run_dual(&self, i: usize, n: usize, x: &B::Buf, preset: Preset) -> Result<(B::Buf, B::Buf)> {
        let b = &self.backend;
        let (input, output) = self.info.dims[i];
        let (bias, stab) = (preset.bias(), preset.stabilizer());
        match &self.layers[i] {
            Prepared::Conv(w) => b.conv3x3_dual(conv_shape(n, input, output), x, w, bias, stab),
            Prepared::Dense(w) => {
                let relu = i + 1 < self.layers.len();
                b.dense_dual(dense_shape(n, input, output), x, w, relu, bias, stab)
            }
            Prepared::Pool | Prepared::Flatten => unreachable!("has_quotient() is false"),
        }
    }

    /// The quotients of `preset` for a forward pass that lacks them: each layer's dual forward
    /// again from its stored input (its a′ equals the stored output and is dropped).
    fn quotients(&self, fwd: &Forward<B>, preset: Preset) -> Result<Vec<Option<B::Buf>>> {
        (0..self.layers.len())
            .map(|i| {
                if !self.has_quotient(i) {
                    return Ok(None);
                }
                let _range = self
                    .backend
                    .range(&format!("quotient/{}", self.info.layer_names[i]));
                Ok(Some(
                    self.run_dual(i, fwd.n, self.activation(fwd, i), preset)?.1,
                ))
            })
            .collect()
    }

    /// Takes over a forward pass that `source` (the same model on another backend) made: every
    /// layer output is copied here, and each pool's argmax is recomputed from the copied input
    /// with the same tie rule. Backward passes on both backends then start from identical state,
    /// which separates the error of the backward kernels from the forward pass's.
    pub fn adopt<C: Backend>(&self, source: &Network<C>, fwd: &Forward<C>) -> Result<Forward<B>> {
        let b = &self.backend;
        let x = b.upload(source.input(fwd)?)?;
        let mut outputs: Vec<Option<B::Buf>> = Vec::with_capacity(fwd.outputs.len());
        let mut argmax = Vec::with_capacity(fwd.outputs.len());
        for (i, out) in fwd.outputs.iter().enumerate() {
            let idx = match self.layers[i] {
                Prepared::Pool => {
                    let input = last_output(&outputs).unwrap_or(&x);
                    let s = pool_shape(fwd.n, self.info.dims[i].0);
                    Some(b.maxpool_forward(s, input)?.1)
                }
                _ => None,
            };
            let out = match out {
                Some(o) => Some(b.upload(&source.backend.download(o)?)?),
                None => None,
            };
            outputs.push(out);
            argmax.push(idx);
        }
        let quotients = match &fwd.quotients {
            Some(q) => Some(Quotients {
                preset: q.preset,
                q: q.q
                    .iter()
                    .map(|qi| match qi {
                        Some(qi) => Ok(Some(b.upload(&source.backend.download(qi)?)?)),
                        None => Ok(None),
                    })
                    .collect::<Result<_>>()?,
            }),
            None => None,
        };
        Ok(Forward {
            n: fwd.n,
            logits: OnceCell::new(),
            input: OnceCell::new(),
            x,
            outputs,
            argmax,
            quotients,
        })
    }

    /// Runs layer `i` over `n` maps of size `input` (convs and pools take any spatial size;
    /// dense layers their own width). Returns the output (`None` for flatten, which keeps the
    /// buffer) and, for a pool, its argmax.
    pub(crate) fn run_layer(
        &self,
        i: usize,
        n: usize,
        input: Dims,
        x: &B::Buf,
    ) -> Result<LayerOutput<B>> {
        let b = &self.backend;
        let output = Dims {
            c: self.info.dims[i].1.c,
            ..input
        };
        Ok(match &self.layers[i] {
            Prepared::Conv(w) => (
                Some(b.conv3x3_forward(conv_shape(n, input, output), x, w)?),
                None,
            ),
            Prepared::Pool => {
                let (y, idx) = b.maxpool_forward(pool_shape(n, input), x)?;
                (Some(y), Some(idx))
            }
            Prepared::Flatten => (None, None),
            Prepared::Dense(w) => {
                let relu = i + 1 < self.layers.len();
                let s = dense_shape(n, input, self.info.dims[i].1);
                (Some(b.dense_forward(s, x, w, relu)?), None)
            }
        })
    }

    /// A backward pass from `heads` output vectors per image, `head_values (N·K, classes)`, down
    /// to the input of layer `stop` (0: the image). Returns `(N·K, dims of that input)` on the
    /// host; for the relevance rule and `stop = 0`, the input relevance `(N·K, S, S, 3)`.
    pub fn backward(
        &self,
        fwd: &Forward<B>,
        heads: usize,
        head_values: &[f32],
        rule: Rule,
        stop: usize,
    ) -> Result<Vec<f32>> {
        let classes = self.num_classes();
        if heads == 0 || head_values.len() != fwd.n * heads * classes {
            return Err(Error::Request(format!(
                "expected {} head values ({} images × {heads} heads × {classes} classes), got {}",
                fwd.n * heads * classes,
                fwd.n,
                head_values.len()
            )));
        }
        let head = self.backend.upload(head_values)?;
        self.backend
            .download(&self.backward_buf(fwd, heads, &head, rule, stop)?)
    }

    /// [`Network::backward`] from heads already on the backend (`(N·K, classes)`, as
    /// [`Backend::heads`] makes them), its result left there.
    pub fn backward_buf(
        &self,
        fwd: &Forward<B>,
        heads: usize,
        head: &B::Buf,
        rule: Rule,
        stop: usize,
    ) -> Result<B::Buf> {
        if let (Rule::Relevance(preset), Formulation::Fused) = (rule, self.formulation) {
            return self.fused_relevance(fwd, heads, head, preset, stop);
        }
        let b = &self.backend;
        let n = fwd.n;
        let mut r = b.clone_buf(head)?;
        let pass = match rule {
            Rule::Relevance(_) => "relevance",
            Rule::Gradient(_) => "gradient",
        };
        for i in (stop..self.layers.len()).rev() {
            let _range = b.range(&format!("{pass}/{}", self.info.layer_names[i]));
            let (input_dims, output_dims) = self.info.dims[i];
            let act = self.activation(fwd, i);
            r = match (&self.layers[i], rule) {
                (Prepared::Flatten, _) => r,
                (Prepared::Pool, _) => {
                    let idx = fwd.argmax[i].as_ref().expect("pools record their argmax");
                    b.maxpool_route(pool_shape(n, input_dims), heads, &r, idx)?
                }
                (Prepared::Dense(w), Rule::Relevance(preset)) => {
                    let s = dense_shape(n, input_dims, output_dims);
                    let q =
                        b.dense_quotient(s, heads, act, w, preset.bias(), preset.stabilizer(), &r)?;
                    b.dense_transpose(s, heads, &q, w, WeightSet::Positive, Some(act))?
                }
                (Prepared::Dense(w), Rule::Gradient(mask)) => {
                    let s = dense_shape(n, input_dims, output_dims);
                    if i + 1 < self.layers.len() {
                        b.relu_backward(
                            n,
                            heads,
                            &mut r,
                            fwd.outputs[i].as_ref().expect("dense output"),
                            mask,
                        )?;
                    }
                    b.dense_transpose(s, heads, &r, w, WeightSet::Plain, None)?
                }
                (Prepared::Conv(_), Rule::Relevance(preset)) if i == 0 => {
                    return self.zbox_relevance(fwd, heads, &r, preset);
                }
                (Prepared::Conv(w), Rule::Relevance(preset)) => {
                    let s = conv_shape(n, input_dims, output_dims);
                    let q = b.conv_quotient(
                        s,
                        heads,
                        act,
                        w,
                        WeightSet::Positive,
                        preset.bias(),
                        preset.stabilizer(),
                        &r,
                    )?;
                    b.conv_transpose(s, heads, &q, w, WeightSet::Positive, Some(act))?
                }
                (Prepared::Conv(w), Rule::Gradient(mask)) => {
                    let s = conv_shape(n, input_dims, output_dims);
                    b.relu_backward(
                        n,
                        heads,
                        &mut r,
                        fwd.outputs[i].as_ref().expect("conv output"),
                        mask,
                    )?;
                    b.conv_transpose(s, heads, &r, w, WeightSet::Plain, None)?
                }
            };
        }
        Ok(r)
    }

    /// The relevance pass of the fused formulation (docs/method.md §Rules): with
    /// `q = a′ / stab(z⁺)` stored per layer, the quotient of a layer is `s = q ⊙ c`, where `c` is
    /// the transposed W⁺ product of the layer above (routed through the pools between), and the
    /// top one is `head ⊙ q_top`. Each multiplication by q happens in the op that makes `c`: the
    /// transposed product's epilogue, or the pool's routing. At the first conv the z^B rule takes
    /// `R = a′₁ ⊙ c`, and relevance at an intermediate layer is `a ⊙ c` there.
    fn fused_relevance(
        &self,
        fwd: &Forward<B>,
        heads: usize,
        head: &B::Buf,
        preset: Preset,
        stop: usize,
    ) -> Result<B::Buf> {
        let b = &self.backend;
        let n = fwd.n;
        let computed;
        let q: &[Option<B::Buf>] = match &fwd.quotients {
            Some(q)
                if q.preset.bias() == preset.bias()
                    && q.preset.stabilizer() == preset.stabilizer() =>
            {
                &q.q
            }
            _ => {
                computed = self.quotients(fwd, preset)?;
                &computed
            }
        };
        let layers = self.layers.len();
        if stop == layers {
            return b.clone_buf(head);
        }
        let mut c = match self.multiplier(fwd, q, layers, stop) {
            Some(m) => b.scale_heads(n, heads, head, m)?,
            None => b.clone_buf(head)?,
        };
        for i in (stop..layers).rev() {
            let _range = b.range(&format!("relevance/{}", self.info.layer_names[i]));
            let (input_dims, output_dims) = self.info.dims[i];
            c = match &self.layers[i] {
                Prepared::Flatten => c,
                Prepared::Pool => {
                    let idx = fwd.argmax[i].as_ref().expect("pools record their argmax");
                    let s = pool_shape(n, input_dims);
                    match self.multiplier(fwd, q, i, stop) {
                        Some(m) => b.maxpool_route_scaled(s, heads, &c, idx, m)?,
                        None => b.maxpool_route(s, heads, &c, idx)?,
                    }
                }
                Prepared::Dense(w) => {
                    let s = dense_shape(n, input_dims, output_dims);
                    let m = self.multiplier(fwd, q, i, stop);
                    b.dense_transpose(s, heads, &c, w, WeightSet::Positive, m)?
                }
                Prepared::Conv(_) if i == 0 => {
                    return self.zbox_relevance(fwd, heads, &c, preset);
                }
                Prepared::Conv(w) => {
                    let s = conv_shape(n, input_dims, output_dims);
                    let m = self.multiplier(fwd, q, i, stop);
                    b.conv_transpose(s, heads, &c, w, WeightSet::Positive, m)?
                }
            };
        }
        Ok(c)
    }

    /// What the product `c` arriving at the input of layer `at` is multiplied by in the fused
    /// pass: the activation there when the pass stops there (`R = a ⊙ c`) or the layer below is
    /// the first conv (its z^B rule takes R); the q of the conv or dense layer below; through a
    /// flatten, what is below it; `None` below a pool, whose routing multiplies instead.
    fn multiplier<'f>(
        &self,
        fwd: &'f Forward<B>,
        q: &'f [Option<B::Buf>],
        at: usize,
        stop: usize,
    ) -> Option<&'f B::Buf> {
        if at == stop {
            return Some(self.activation(fwd, at));
        }
        let below = at - 1;
        match self.layers[below] {
            Prepared::Flatten => self.multiplier(fwd, q, below, stop),
            Prepared::Pool => None,
            Prepared::Conv(_) if below == 0 => fwd.outputs[0].as_ref(),
            Prepared::Conv(_) | Prepared::Dense(_) => q[below].as_ref(),
        }
    }

    /// The z^B rule on the first conv, as one z⁺-shaped pass over the doubled input
    /// `[x − l | x − h]` with weights `[W⁺ | W⁻]`: every term of its denominator is ≥ 0, so
    /// nothing cancels; the two halves of the result are summed per channel.
    fn zbox_relevance(
        &self,
        fwd: &Forward<B>,
        heads: usize,
        r: &B::Buf,
        preset: Preset,
    ) -> Result<B::Buf> {
        let b = &self.backend;
        let doubled = b.zbox_input(&fwd.x, &self.zbox_bounds)?;
        let (input_dims, output_dims) = self.info.dims[0];
        let channels = input_dims.c;
        let s = conv_shape(
            fwd.n,
            Dims {
                c: 2 * channels,
                ..input_dims
            },
            output_dims,
        );
        let q = b.conv_quotient(
            s,
            heads,
            &doubled,
            &self.zbox,
            WeightSet::Plain,
            BiasMode::None,
            preset.stabilizer(),
            r,
        )?;
        let halves =
            b.conv_transpose(s, heads, &q, &self.zbox, WeightSet::Plain, Some(&doubled))?;
        b.zbox_sum(&halves, channels)
    }

    /// The input of layer `i`: the output of the nearest earlier layer that has one.
    fn activation<'f>(&self, fwd: &'f Forward<B>, i: usize) -> &'f B::Buf {
        last_output(&fwd.outputs[..i]).unwrap_or(&fwd.x)
    }
}

/// The value of `cell`, made by `make` the first time.
fn once<T>(cell: &OnceCell<Vec<T>>, make: impl FnOnce() -> Result<Vec<T>>) -> Result<&[T]> {
    if cell.get().is_none() {
        let _ = cell.set(make()?);
    }
    Ok(cell.get().expect("set above"))
}

/// The output of the last layer that produced one (flatten produces none).
fn last_output<T>(outputs: &[Option<T>]) -> Option<&T> {
    outputs.iter().rev().find_map(Option::as_ref)
}

/// The first conv's z^B weights: `[W⁺ | W⁻]` along the input channels, no bias.
fn zbox_params(first: &ConvParams) -> ConvParams {
    let (cin, cout) = (first.cin, first.cout);
    let mut weight = vec![0.0; cout * 2 * cin * 9];
    for co in 0..cout {
        for ci in 0..cin {
            for tap in 0..9 {
                let w = first.weight[(co * cin + ci) * 9 + tap];
                weight[(co * 2 * cin + ci) * 9 + tap] = w.max(0.0);
                weight[(co * 2 * cin + cin + ci) * 9 + tap] = w.min(0.0);
            }
        }
    }
    ConvParams {
        cin: 2 * cin,
        cout,
        weight,
        bias: vec![0.0; cout],
    }
}

fn conv_shape(n: usize, input: Dims, output: Dims) -> ConvShape {
    ConvShape {
        n,
        h: input.h,
        w: input.w,
        cin: input.c,
        cout: output.c,
    }
}

fn pool_shape(n: usize, input: Dims) -> PoolShape {
    PoolShape {
        n,
        h: input.h,
        w: input.w,
        c: input.c,
    }
}

fn dense_shape(n: usize, input: Dims, output: Dims) -> DenseShape {
    DenseShape {
        n,
        inputs: input.len(),
        outputs: output.c,
    }
}
