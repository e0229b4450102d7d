//! The backend trait: the layer operations of docs/method.md §Rules, written once for the model and the
//! methods, implemented by the CPU reference and by the CUDA backend.
//!
//! Layout: activations are NHWC, `(N, H, W, C)`, row-major; after `flatten` a map is `(N, F)`
//! with features in (H, W, C) order, so flatten is free. Relevance and gradients carry several
//! heads per image: `(N·K, H, W, C)`, row `n·K + k` is head `k` of image `n`, and ops that need the
//! forward activations read image `row / K`. That is how several methods and targets for one
//! image share the forward pass and the z⁺ denominators (docs/method.md §Properties).

pub mod cpu;
pub mod cuda;
pub mod open;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Result;
use crate::heatmap::HeatmapKind;
use crate::model::{ConvParams, DenseParams};

/// The arithmetic a backend's kernels use (docs/numerics.md §Bounds). `F32` is f32-accurate;
/// `Tf32` and `Bf16` trade accuracy for tensor-core throughput. The CPU reference always
/// computes in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Tf32,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Tf32, Precision::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }

    /// The relative-L2 bound of a map against the CPU reference at this precision (κ-scaled for
    /// cancelling maps): f32 1e-4, tf32 1e-2, bf16 3e-2.
    pub fn bound(self) -> f64 {
        match self {
            Precision::F32 => 1e-4,
            Precision::Tf32 => 1e-2,
            Precision::Bf16 => 3e-2,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown precision `{s}` (expected f32, tf32 or bf16)"))
    }
}

/// What runs an op on a backend ([`Backend::kernels`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelUse {
    /// The op (`ConvForward`, …), or the ops a row stands for.
    pub op: String,
    /// The kernel's entry point, or what computes the op.
    pub kernel: String,
    /// The arithmetic it computes in (a precision without its own kernel falls back to f32).
    pub precision: Precision,
}

/// One line per op, `  op  kernel  (precision)`, the ops aligned (`sglrp info`, `sglrp bench`).
pub fn kernel_lines(kernels: &[KernelUse]) -> String {
    let width = kernels.iter().map(|k| k.op.len()).max().unwrap_or(0);
    kernels
        .iter()
        .map(|k| format!("  {:<width$}  {}  ({})\n", k.op, k.kernel, k.precision))
        .collect()
}

/// Shape of a 3×3, stride-1, pad-1 convolution over `n` images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
}

/// Shape of a 2×2, stride-2 max pooling over `n` images; the output is `(h/2, w/2)` (floor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// Shape of a dense layer over `n` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseShape {
    pub n: usize,
    pub inputs: usize,
    pub outputs: usize,
}

impl ConvShape {
    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.cin
    }
    pub fn output_len(&self) -> usize {
        self.n * self.h * self.w * self.cout
    }
}

impl PoolShape {
    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
    pub fn output_len(&self) -> usize {
        self.n * (self.h / 2) * (self.w / 2) * self.c
    }
}

/// Which weights an op uses: `W` or `W⁺ = max(W, 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightSet {
    Plain,
    Positive,
}

/// The bias term β of the z⁺ denominator (docs/method.md §Rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasMode {
    /// β = 0 (the paper, Eq. 1).
    None,
    /// β = max(b, 0) (Zennit's ZPlus).
    Positive,
    /// β = b (iNNvestigate 1.0.8.3).
    Full,
}

/// How a denominator is kept away from zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stabilizer {
    /// `d + ε·sign(d)`, `sign(0) = +1` (Zennit's `stabilize`).
    Epsilon(f32),
    /// Exact zeros become the value; everything else is untouched (iNNvestigate's SafeDivide).
    ZeroTo(f32),
}

impl Stabilizer {
    #[inline]
    pub fn apply(self, d: f32) -> f32 {
        match self {
            Stabilizer::Epsilon(eps) => {
                if d >= 0.0 {
                    d + eps
                } else {
                    d - eps
                }
            }
            Stabilizer::ZeroTo(value) => {
                if d == 0.0 {
                    value
                } else {
                    d
                }
            }
        }
    }
}

/// The ReLU backward rule of a gradient pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Pass where the forward output is positive (the gradient).
    Relu,
    /// Pass where the forward output and the gradient are both positive (Guided Backprop).
    Guided,
}

/// How a head row's values are made from its image's logits `z` and its target `t`
/// (docs/method.md §Heads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadRule {
    /// `z_t` at the target, 0 elsewhere.
    Lrp,
    /// `z_t` at the target, `−z_t / (classes − 1)` elsewhere.
    Clrp,
    /// The softmax gradient `∂ŷ_t/∂z` (softmax in f64).
    Sglrp,
    /// 1 at the target, 0 elsewhere: what the gradient baselines differentiate.
    OneHot,
    /// Row `i` of the caller's custom heads, as given.
    Custom(usize),
}

/// Which class a head row is for: a class index, or the class ranked `k`-th among its image's
/// logits (1 = highest; equal logits rank the lower index first, NaN above every number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadTarget {
    Class(usize),
    Rank(usize),
}

/// One row of [`Backend::heads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadSpec {
    pub rule: HeadRule,
    pub target: HeadTarget,
}

/// The class a target names among logits `z`.
pub fn resolve_target(z: &[f32], target: HeadTarget) -> usize {
    match target {
        HeadTarget::Class(c) => c,
        HeadTarget::Rank(k) => ranking(z)[k - 1],
    }
}

/// A pass's head rows as [`Backend::heads`] reads them: four words per row (rule, target kind,
/// class or rank, custom row: u32 values stored as the bits of f32 words), then the custom rows.
pub fn head_table(specs: &[HeadSpec], custom: &[f32]) -> Vec<f32> {
    let words = specs.iter().flat_map(|spec| {
        let (rule, row) = match spec.rule {
            HeadRule::Lrp => (0, 0),
            HeadRule::Clrp => (1, 0),
            HeadRule::Sglrp => (2, 0),
            HeadRule::OneHot => (3, 0),
            HeadRule::Custom(i) => (4, i),
        };
        let (kind, value) = match spec.target {
            HeadTarget::Class(c) => (0, c),
            HeadTarget::Rank(k) => (1, k),
        };
        [rule, kind, value, row].map(|w| f32::from_bits(w.try_into().unwrap_or(u32::MAX)))
    });
    words.chain(custom.iter().copied()).collect()
}

/// Row `r` of a head table, if its words name a rule, a target in range for `classes` and a
/// custom row the table holds.
pub fn table_row(table: &[f32], rows: usize, classes: usize, r: usize) -> Option<HeadSpec> {
    let [rule, kind, value, row] = [0, 1, 2, 3].map(|i| table[4 * r + i].to_bits() as usize);
    let custom_rows = (table.len() - 4 * rows) / classes;
    let rule = match rule {
        0 => HeadRule::Lrp,
        1 => HeadRule::Clrp,
        2 => HeadRule::Sglrp,
        3 => HeadRule::OneHot,
        4 if row < custom_rows => HeadRule::Custom(row),
        _ => return None,
    };
    let target = match kind {
        0 if value < classes => HeadTarget::Class(value),
        1 if (1..=classes).contains(&value) => HeadTarget::Rank(value),
        _ => return None,
    };
    Some(HeadSpec { rule, target })
}

/// Why [`Backend::heads`]' arguments do not fit together, if they do not.
pub fn heads_mismatch(logits: usize, classes: usize, rows: usize, table: usize) -> Option<String> {
    if classes == 0 || logits == 0 || !logits.is_multiple_of(classes) {
        return Some(format!(
            "{logits} logits are not whole rows of {classes} classes"
        ));
    }
    let n = logits / classes;
    if rows == 0 || !rows.is_multiple_of(n) {
        return Some(format!("{rows} head rows for {n} images"));
    }
    (table < 4 * rows).then(|| format!("a head table of {table} words for {rows} rows"))
}

/// Classes ordered by logit, highest first: `total_cmp` order (NaN above every number), ties
/// to the lower index.
pub fn ranking(z: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
    order
}

/// The shape of a batch's work, for [`Backend::run_pass`]: `batch` images with `heads` requests
/// each, `pass` the caller's number for everything else the work depends on (methods, settings,
/// the sizes of its inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PassKey {
    pub batch: usize,
    pub heads: usize,
    pub pass: u64,
}

/// The work of [`Backend::run_pass`]: from the uploaded inputs to the buffers to download.
pub type Work<'a, Buf> = dyn Fn(&[Buf]) -> Result<Vec<Buf>> + 'a;

/// A named span of work — one layer of one pass, `forward/conv3_2`, `relevance/fc1` — opened by
/// [`Backend::range`] and closed when dropped. The CUDA backend marks it as an NVTX range (and
/// can time it); by default it does nothing.
#[must_use = "the range ends when this guard is dropped"]
pub struct Range<'a> {
    end: Option<Box<dyn FnOnce() + 'a>>,
}

impl<'a> Range<'a> {
    /// A range that does nothing.
    pub fn none() -> Self {
        Range { end: None }
    }

    /// A range that runs `end` when it closes.
    pub fn new(end: impl FnOnce() + 'a) -> Self {
        Range {
            end: Some(Box::new(end)),
        }
    }
}

impl Drop for Range<'_> {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            end();
        }
    }
}

/// Something that can time the ranges of a pass (the CUDA backend, with device events).
pub trait LayerTimer {
    /// Starts recording (and forgets what was recorded).
    fn start_layer_timing(&self);
    /// What was recorded since the start, in the order the ranges closed; stops recording.
    fn stop_layer_timing(&self) -> Result<Vec<cuda::LayerTime>>;
}

/// The layer operations. Buffers hold f32 (`Buf`) or u32 argmax indices (`Index`); `Conv` and
/// `Dense` are a layer's weights in whatever layouts the backend prepared at load time.
pub trait Backend {
    type Buf;
    type Index;
    type Conv;
    type Dense;
    /// A pass submitted and not yet finished ([`Backend::submit_pass`]).
    type Pending;

    /// A short name for messages: `cpu`, `cuda:0`.
    fn name(&self) -> String;

    /// Asks for the arithmetic of the following ops. Returns a note for the user when the
    /// backend cannot honour it (the CPU reference computes in f32 and says so once).
    fn set_precision(&mut self, precision: Precision) -> Option<String>;

    /// The arithmetic the ops run in now.
    fn precision(&self) -> Precision;

    /// Per op, what the backend launches for it at its current precision (`sglrp info`, `sglrp
    /// bench`).
    fn kernels(&self) -> Vec<KernelUse>;

    /// Opens the range `name` (`forward/conv3_2`, …) until the returned guard drops: a label for
    /// profilers and per-layer timers. Does nothing unless a backend says otherwise.
    fn range(&self, name: &str) -> Range<'_> {
        let _ = name;
        Range::none()
    }

    /// The backend's timer of ranges, where it has one (see [`open::Caps::layer_timer`]).
    fn layer_timer(&self) -> Option<&dyn LayerTimer> {
        None
    }

    /// Uploads `inputs`, runs the work `pass` queues on them and downloads the buffers it
    /// returns. With a `key`, a backend may record the work the first time it sees the key and
    /// replay the record for later inputs (the CUDA backend: one CUDA graph per key), so `pass`
    /// must then queue the same work for every input of its key and download nothing.
    fn run_pass(
        &self,
        key: Option<PassKey>,
        inputs: &[&[f32]],
        pass: &Work<'_, Self::Buf>,
    ) -> Result<Vec<Vec<f32>>> {
        self.finish_pass(self.submit_pass(key, inputs, pass)?)
    }

    /// [`Backend::run_pass`] without waiting for its results, which [`Backend::finish_pass`]
    /// returns: a backend with copy streams (CUDA) uploads the inputs of the next pass submitted
    /// and downloads the results of the last one while this one computes. A backend without
    /// them runs the pass at once.
    fn submit_pass(
        &self,
        key: Option<PassKey>,
        inputs: &[&[f32]],
        pass: &Work<'_, Self::Buf>,
    ) -> Result<Self::Pending>;

    /// The downloads of a submitted pass, once they are done.
    fn finish_pass(&self, pending: Self::Pending) -> Result<Vec<Vec<f32>>>;

    fn upload(&self, host: &[f32]) -> Result<Self::Buf>;
    /// A copy of `x` on the backend.
    fn clone_buf(&self, x: &Self::Buf) -> Result<Self::Buf>;
    fn download(&self, buf: &Self::Buf) -> Result<Vec<f32>>;
    fn prepare_conv(&self, params: &ConvParams) -> Result<Self::Conv>;
    fn prepare_dense(&self, params: &DenseParams) -> Result<Self::Dense>;

    /// `y = relu(conv3x3(x, W) + b)`. x `(N, H, W, Cin)` → y `(N, H, W, Cout)`.
    fn conv3x3_forward(&self, s: ConvShape, x: &Self::Buf, w: &Self::Conv) -> Result<Self::Buf>;

    /// 2×2 max pooling. x `(N, H, W, C)` → y `(N, H/2, W/2, C)` and, per output, the flat index
    /// `(y·W + x)·C + c` within its image of the first maximum in row-major window order.
    fn maxpool_forward(&self, s: PoolShape, x: &Self::Buf) -> Result<(Self::Buf, Self::Index)>;

    /// `y = W x + b`, optionally ReLU. x `(N, in)` → y `(N, out)`.
    fn dense_forward(
        &self,
        s: DenseShape,
        x: &Self::Buf,
        w: &Self::Dense,
        relu: bool,
    ) -> Result<Self::Buf>;

    /// The z⁺/z^B quotient `s = R / stab(conv3x3(a, W_set) + β)`: the denominator is computed
    /// once per image and divides the relevance of each of its `heads`.
    /// a `(N, H, W, Cin)`, r `(N·K, H, W, Cout)` → s `(N·K, H, W, Cout)`.
    #[allow(clippy::too_many_arguments)]
    fn conv_quotient(
        &self,
        s: ConvShape,
        heads: usize,
        a: &Self::Buf,
        w: &Self::Conv,
        set: WeightSet,
        bias: BiasMode,
        stab: Stabilizer,
        r: &Self::Buf,
    ) -> Result<Self::Buf>;

    /// The transposed convolution `c = conv3x3ᵀ(g, W_set)`, multiplied by the activation of the
    /// head's image when `act` is given (the z⁺ redistribution `R = a·c`).
    /// g `(N·K, H, W, Cout)`, act `(N, H, W, Cin)` → `(N·K, H, W, Cin)`.
    #[allow(clippy::too_many_arguments)]
    fn conv_transpose(
        &self,
        s: ConvShape,
        heads: usize,
        g: &Self::Buf,
        w: &Self::Conv,
        set: WeightSet,
        act: Option<&Self::Buf>,
    ) -> Result<Self::Buf>;

    /// Dense twin of [`Backend::conv_quotient`]. a `(N, in)`, r `(N·K, out)` → `(N·K, out)`.
    #[allow(clippy::too_many_arguments)]
    fn dense_quotient(
        &self,
        s: DenseShape,
        heads: usize,
        a: &Self::Buf,
        w: &Self::Dense,
        bias: BiasMode,
        stab: Stabilizer,
        r: &Self::Buf,
    ) -> Result<Self::Buf>;

    /// Dense twin of [`Backend::conv_transpose`]. g `(N·K, out)`, act `(N, in)` → `(N·K, in)`.
    fn dense_transpose(
        &self,
        s: DenseShape,
        heads: usize,
        g: &Self::Buf,
        w: &Self::Dense,
        set: WeightSet,
        act: Option<&Self::Buf>,
    ) -> Result<Self::Buf>;

    /// The fused forward of a conv layer (docs/method.md §Rules, the fused z⁺ pass): from one pass
    /// over x, `a′ = relu(conv3x3(x, W) + b)` and `q = a′ / stab(conv3x3(x, W⁺) + β)`.
    /// x `(N, H, W, Cin)` → (a′, q), each `(N, H, W, Cout)`.
    fn conv3x3_dual(
        &self,
        s: ConvShape,
        x: &Self::Buf,
        w: &Self::Conv,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(Self::Buf, Self::Buf)>;

    /// Dense twin of [`Backend::conv3x3_dual`]: `a′ = W x + b` (ReLU when `relu`) and
    /// `q = a′ / stab(W⁺ x + β)`; without ReLU (the logits) `q = 1 / stab(W⁺ x + β)`.
    /// x `(N, in)` → (a′, q), each `(N, out)`.
    fn dense_dual(
        &self,
        s: DenseShape,
        x: &Self::Buf,
        w: &Self::Dense,
        relu: bool,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(Self::Buf, Self::Buf)>;

    /// [`Backend::maxpool_route`] times `m`, a map of the pool's input per image: the value
    /// routed to position p of row r is multiplied by `m[r / K][p]`.
    /// c `(N·K, H/2, W/2, C)`, m `(N, H, W, C)` → `(N·K, H, W, C)`.
    fn maxpool_route_scaled(
        &self,
        s: PoolShape,
        heads: usize,
        c: &Self::Buf,
        argmax: &Self::Index,
        m: &Self::Buf,
    ) -> Result<Self::Buf>;

    /// `r ⊙ m` per image: row `r` of the `n·K` maps is multiplied by map `r / K` of `m`.
    /// r `(N·K, map)`, m `(N, map)` → `(N·K, map)`.
    fn scale_heads(
        &self,
        n: usize,
        heads: usize,
        r: &Self::Buf,
        m: &Self::Buf,
    ) -> Result<Self::Buf>;

    /// Max-pool routing: each output's relevance (or gradient) goes wholly to its argmax.
    /// r `(N·K, H/2, W/2, C)` → `(N·K, H, W, C)`, zero where no window's maximum is.
    fn maxpool_route(
        &self,
        s: PoolShape,
        heads: usize,
        r: &Self::Buf,
        argmax: &Self::Index,
    ) -> Result<Self::Buf>;

    /// The ReLU backward of a gradient pass, in place: g `(N·K, …)`, y `(N, …)` the ReLU output
    /// of `n` images.
    fn relu_backward(
        &self,
        n: usize,
        heads: usize,
        g: &mut Self::Buf,
        y: &Self::Buf,
        mask: Mask,
    ) -> Result<()>;

    /// The output relevance of every head row from the logits on the backend (docs/method.md
    /// §Heads), so a pass goes from the forward to the backward without the host: row `r` is head
    /// `r % K` of image `r / K`, `K = rows / N`, described by `table` ([`head_table`], uploaded).
    /// logits `(N, classes)` → heads `(rows, classes)` and each row's target class (as an f32
    /// number). A row whose words are out of range ([`table_row`]) gets NaN values and target.
    fn heads(
        &self,
        logits: &Self::Buf,
        classes: usize,
        rows: usize,
        table: &Self::Buf,
    ) -> Result<(Self::Buf, Self::Buf)>;

    /// The u32 values of an index buffer (argmax, targets), on the host.
    fn download_index(&self, idx: &Self::Index) -> Result<Vec<u32>>;

    /// The heatmap of maps stored channels last (docs/method.md §Heatmaps): r `(pixels, C)` →
    /// `(pixels)`, each pixel's channels combined in channel order as `kind` says, so that a run
    /// that writes pictures downloads one value per pixel.
    fn heatmap(&self, r: &Self::Buf, channels: usize, kind: HeatmapKind) -> Result<Self::Buf>;

    /// The z^B rule's doubled input `[x − l | x − h]`: x `(pixels, C)` → `(pixels, 2C)`, with
    /// `bounds` = the C lower bounds, then the C upper bounds (on the backend, uploaded once).
    fn zbox_input(&self, x: &Self::Buf, bounds: &Self::Buf) -> Result<Self::Buf>;

    /// The two halves of a z^B relevance added per channel: `(pixels, 2C)` → `(pixels, C)`.
    fn zbox_sum(&self, halves: &Self::Buf, channels: usize) -> Result<Self::Buf>;
}
