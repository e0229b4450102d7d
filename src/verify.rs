//! `sglrp verify`: the CPU reference against another backend (the GPU) on the same inputs, with
//! the bounds of docs/numerics.md §Bounds. Three levels:
//! - per layer: each layer's ops run on both backends from the same CPU activations (so errors
//!   do not compound), forward and, for z⁺ layers, the quotient and the redistribution;
//! - logits, and every method of every preset asked for, with the device's backward pass started
//!   from the CPU's forward state ([`Network::adopt`]): these decide the verdict;
//! - the same maps end to end (the device's own forward pass), for information, next to the CPU
//!   reference's own spread when its input moves by one rounding step (2⁻²⁴ relative).
//!
//! Why the end-to-end maps cannot decide: a max-pool window with a near tie, or a ReLU input near
//! zero, turns a rounding difference of the forward pass into a different path for relevance;
//! the CPU reference moves as much against itself when its input changes in the last bit.
//!
//! Signed maps (CLRP, SGLRP) are differences of two non-negative maps, and the difference can be
//! far smaller than either. Their bound applies to the error relative to the un-cancelled map
//! `B|r|`: `‖got − want‖ ≤ bound · ‖B|r|‖`, that is `rel L2 ≤ bound · κ` with the cancellation
//! `κ = ‖B|r|‖ / ‖B r‖` per map (1 for LRP and the baselines, where the bound is the documented one).
//!
//! The CLI only parses arguments and prints [`VerifyReport`].

use serde::Serialize;

use crate::backend::cpu::CpuBackend;
use crate::backend::{
    Backend, BiasMode, ConvShape, DenseShape, PoolShape, Precision, Stabilizer, WeightSet,
};
use crate::error::Result;
use crate::explain::{
    Explanation, Forward, ImageResult, Method, Network, Preset, Request, Target, innvestigate_heads,
};
use crate::heatmap::{HeatmapKind, heatmap};
use crate::model::{Layer, Model};

/// docs/numerics.md §Bounds: CUDA f32 against the CPU reference, relative L2 per map.
pub const F32_BOUND: f64 = 1e-4;

/// The share of a heatmap's pixels whose top set is compared, and the least overlap that passes.
pub const TOP_SHARE: f64 = 0.05;
pub const MIN_TOP_OVERLAP: f64 = 0.95;

/// The relative input change under which the CPU reference's own spread is measured: one
/// rounding step of f32.
const ROUNDING_STEP: f32 = 5.96e-8;

/// One comparison: a device result against the CPU's.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// What was compared: `conv3_2 forward`, `zennit sglrp`, `logits`.
    pub what: String,
    pub max_abs: f64,
    /// Worst relative L2 over the maps compared (one per image and head).
    pub rel_l2: f64,
    /// Worst cancellation `κ = ‖B|r|‖ / ‖B r‖` over the maps (1: nothing cancels).
    pub cancellation: f64,
    /// Per map, `rel L2 ≤ bound · κ` passes.
    pub bound: f64,
    pub pass: bool,
    /// End to end only: the CPU reference against itself when its input moves by one rounding
    /// step, worst relative L2 over the maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_spread: Option<f64>,
    /// Explanations only: the worst overlap, over the maps, of the top 5 % heatmap pixels
    /// ([`top_overlap`]); below [`MIN_TOP_OVERLAP`] fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_overlap: Option<f64>,
}

/// `‖a − b‖₂ / ‖b‖₂`, infinite when either holds a NaN or an Inf (docs/numerics.md §Bounds: none ever passes).
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let norm = norm2(b);
    if norm == 0.0 {
        return if diff == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (diff / norm).sqrt()
}

fn norm2(v: &[f32]) -> f64 {
    v.iter().map(|y| (*y as f64).powi(2)).sum()
}

/// The largest absolute difference; infinite for NaN/Inf or different lengths.
pub fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

impl Comparison {
    /// Compares `got` with `want` map by map (`map` values each) and keeps the worst.
    pub fn maps(
        what: impl Into<String>,
        got: &[f32],
        want: &[f32],
        map: usize,
        bound: f64,
    ) -> Self {
        Self::signed_maps(what, got, want, None, map, bound)
    }

    /// [`Comparison::maps`] for maps that may cancel: `terms` holds, per map of `want`, the
    /// un-cancelled map `B|r|` (None: nothing cancels, κ = 1).
    pub fn signed_maps(
        what: impl Into<String>,
        got: &[f32],
        want: &[f32],
        terms: Option<&[f32]>,
        map: usize,
        bound: f64,
    ) -> Self {
        let (mut worst, mut abs, mut kappa, mut pass) = (0.0f64, 0.0f64, 1.0f64, true);
        let sizes_agree = terms.is_none_or(|t| t.len() == want.len());
        if got.len() != want.len() || map == 0 || !sizes_agree {
            (worst, abs, pass) = (f64::INFINITY, f64::INFINITY, false);
        } else {
            for (k, (g, w)) in got.chunks(map).zip(want.chunks(map)).enumerate() {
                let rel = rel_l2(g, w);
                let kk = terms.map_or(1.0, |t| cancellation(&t[k * map..][..map], w));
                pass &= rel <= bound * kk;
                worst = worst.max(rel);
                abs = abs.max(max_abs(g, w));
                kappa = kappa.max(kk);
            }
        }
        Comparison {
            what: what.into(),
            max_abs: abs,
            rel_l2: worst,
            cancellation: kappa,
            bound,
            pass,
            reference_spread: None,
            top_overlap: None,
        }
    }

    /// Adds the top-5 % overlap of the heatmaps of `got` and `want`, `(C, H, W)` maps of
    /// `channels`, to the verdict.
    fn with_overlap(mut self, got: &[f32], want: &[f32], channels: usize, map: usize) -> Self {
        if got.len() != want.len() || map == 0 {
            return self;
        }
        let worst = got
            .chunks(map)
            .zip(want.chunks(map))
            .map(|(g, w)| top_overlap(g, w, channels, self.bound))
            .fold(1.0f64, f64::min);
        self.pass &= worst >= MIN_TOP_OVERLAP;
        self.top_overlap = Some(worst);
        self
    }

    /// An end-to-end comparison, next to the reference's own spread.
    fn informative(mut self, reference_spread: f64) -> Self {
        self.reference_spread = Some(reference_spread);
        self
    }
}

/// The overlap of the top [`TOP_SHARE`] pixels of two maps' positive heatmaps (docs/method.md
/// §Heatmaps): the share of `got`'s top pixels that are among `want`'s, where a pixel within
/// `bound · max` of `want`'s threshold counts (two pixels whose values tie within the bound may
/// swap places). `(C, H, W)` maps of `channels`.
pub fn top_overlap(got: &[f32], want: &[f32], channels: usize, bound: f64) -> f64 {
    let (g, w) = (
        heatmap(got, channels, HeatmapKind::Positive),
        heatmap(want, channels, HeatmapKind::Positive),
    );
    if g.is_empty() || g.len() != w.len() {
        return 0.0;
    }
    let k = ((g.len() as f64 * TOP_SHARE).ceil() as usize).clamp(1, g.len());
    let order = |h: &[f32]| {
        let mut idx: Vec<usize> = (0..h.len()).collect();
        idx.sort_by(|&a, &b| h[b].total_cmp(&h[a]).then(a.cmp(&b)));
        idx
    };
    let threshold = w[order(&w)[k - 1]] as f64;
    let top = w.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let floor = threshold - bound * top;
    let hits = order(&g)[..k]
        .iter()
        .filter(|&&i| w[i] as f64 >= floor)
        .count();
    hits as f64 / k as f64
}

/// `‖terms‖ / ‖map‖`, at least 1; infinite for a zero map with non-zero terms.
fn cancellation(terms: &[f32], map: &[f32]) -> f64 {
    let (t, m) = (norm2(terms), norm2(map));
    if t == 0.0 {
        1.0
    } else if m == 0.0 {
        f64::INFINITY
    } else {
        (t / m).sqrt().max(1.0)
    }
}

/// What to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub presets: Vec<Preset>,
    pub methods: Vec<Method>,
    pub targets: Vec<Target>,
    /// Also compare every layer's ops.
    pub layers: bool,
    /// The device's arithmetic; [`VerifyOptions::for_precision`] sets the bound to match.
    pub precision: Precision,
    pub bound: f64,
}

impl VerifyOptions {
    /// The options at `precision`, with its bound (docs/numerics.md §Bounds).
    pub fn for_precision(precision: Precision) -> Self {
        VerifyOptions {
            precision,
            bound: precision.bound(),
            ..VerifyOptions::default()
        }
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            presets: Preset::ALL.to_vec(),
            methods: Method::PAPER.to_vec(),
            targets: vec![Target::Rank(1), Target::Rank(2)],
            layers: true,
            precision: Precision::F32,
            bound: F32_BOUND,
        }
    }
}

/// Everything `sglrp verify` prints.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub device: String,
    /// The arithmetic asked of the device, and what it said about it (a fallback, if any).
    pub precision: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub model: String,
    pub images: usize,
    pub input_side: usize,
    pub layers: Vec<Comparison>,
    /// Logits, then every preset's methods from the same forward state.
    pub methods: Vec<Comparison>,
    /// The same maps from the device's own forward pass: they inform, they decide nothing.
    pub end_to_end: Vec<Comparison>,
}

impl VerifyReport {
    /// The comparisons that decide the verdict.
    fn gated(&self) -> impl Iterator<Item = &Comparison> {
        self.layers.iter().chain(&self.methods)
    }

    pub fn passed(&self) -> bool {
        self.gated().all(|c| c.pass)
    }

    pub fn failures(&self) -> Vec<&Comparison> {
        self.gated().filter(|c| !c.pass).collect()
    }

    /// Folds in the report of the same comparisons on further images: the worst of each.
    pub fn merge(&mut self, other: VerifyReport) {
        self.images += other.images;
        let theirs = other
            .layers
            .into_iter()
            .chain(other.methods)
            .chain(other.end_to_end);
        let mine = self
            .layers
            .iter_mut()
            .chain(&mut self.methods)
            .chain(&mut self.end_to_end);
        for (mine, theirs) in mine.zip(theirs) {
            debug_assert_eq!(mine.what, theirs.what);
            mine.max_abs = mine.max_abs.max(theirs.max_abs);
            mine.rel_l2 = mine.rel_l2.max(theirs.rel_l2);
            mine.cancellation = mine.cancellation.max(theirs.cancellation);
            mine.pass &= theirs.pass;
            mine.top_overlap = match (mine.top_overlap, theirs.top_overlap) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            mine.reference_spread = match (mine.reference_spread, theirs.reference_spread) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// Markdown tables of every comparison.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "verify: {} ({}) against the CPU reference, {} ({} images, {}×{})\n\n\
             | comparison | max abs | rel L2 | κ | bound | |\n|---|---|---|---|---|---|\n",
            self.device, self.precision, self.model, self.images, self.input_side, self.input_side
        );
        for note in &self.notes {
            s.insert_str(
                s.find("\n\n").unwrap_or(s.len()),
                &format!("\nnote: {note}"),
            );
        }
        for c in self.gated() {
            s.push_str(&format!(
                "| {} | {:.3e} | {:.3e} | {:.3} | {:.0e}{} | {}{} |\n",
                c.what,
                c.max_abs,
                c.rel_l2,
                c.cancellation,
                c.bound,
                if c.cancellation > 1.0 { " · κ" } else { "" },
                if c.pass { "ok" } else { "FAIL" },
                c.top_overlap
                    .map_or(String::new(), |o| format!(" (top 5 %: {:.0} %)", 100.0 * o))
            ));
        }
        if !self.end_to_end.is_empty() {
            s.push_str(
                "\nEnd to end (the device's own forward pass; informative). CPU spread: the \
                 reference against itself, input moved by 2⁻²⁴.\n\n\
                 | map | max abs | rel L2 | κ | CPU spread |\n|---|---|---|---|---|\n",
            );
            for c in &self.end_to_end {
                s.push_str(&format!(
                    "| {} | {:.3e} | {:.3e} | {:.3} | {:.3e} |\n",
                    c.what,
                    c.max_abs,
                    c.rel_l2,
                    c.cancellation,
                    c.reference_spread.unwrap_or(f64::NAN)
                ));
            }
        }
        s.push_str(if self.passed() {
            "\nall comparisons within docs/numerics.md §Bounds\n"
        } else {
            "\nSOME COMPARISONS EXCEED docs/numerics.md §Bounds\n"
        });
        s
    }
}

/// Verifies `device` against the CPU reference on `input` `(N, S, S, 3)` (pre-processed).
pub fn verify<B: Backend>(
    model: &Model,
    mut device: B,
    cpu: CpuBackend,
    input: &[f32],
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    let device_name = device.name();
    let notes: Vec<String> = device
        .set_precision(options.precision)
        .into_iter()
        .collect();
    let layers = if options.layers {
        verify_layers(model, &device, &cpu, input, options.bound)?
    } else {
        Vec::new()
    };
    let dev = Network::new(device, model)?;
    let cpu = Network::new(cpu, model)?;
    let (fd, fc) = (dev.forward(input)?, cpu.forward(input)?);
    let same = dev.adopt(&cpu, &fc)?;
    let nudged: Vec<f32> = input
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let step = if i % 2 == 0 {
                ROUNDING_STEP
            } else {
                -ROUNDING_STEP
            };
            v * (1.0 + step)
        })
        .collect();
    let fn_ = cpu.forward(&nudged)?;
    let classes = cpu.num_classes();
    let mut methods = vec![Comparison::maps(
        "logits",
        dev.logits(&fd)?,
        cpu.logits(&fc)?,
        classes,
        options.bound,
    )];
    let mut end_to_end = Vec::new();
    let requests: Vec<Request> = options
        .targets
        .iter()
        .flat_map(|t| options.methods.iter().map(|m| Request::new(m.clone(), *t)))
        .collect();
    let requests = vec![requests; fd.n];
    for preset in &options.presets {
        let want = cpu.explain_forward(&fc, &requests, *preset)?;
        let terms = uncancelled(&cpu, &fc, &want, *preset)?;
        let got = dev.explain_forward(&same, &requests, *preset)?;
        let own = dev.explain_forward(&fd, &requests, *preset)?;
        let spread = cpu.explain_forward(&fn_, &requests, *preset)?;
        for method in &options.methods {
            let maps = |results: &[ImageResult]| -> Vec<f32> {
                results
                    .iter()
                    .flat_map(|r| &r.explanations)
                    .filter(|e| &e.method == method)
                    .flat_map(|e| e.relevance.iter().copied())
                    .collect()
            };
            let (want, got, own, spread) = (maps(&want), maps(&got), maps(&own), maps(&spread));
            let terms = method.is_lrp().then(|| {
                terms
                    .iter()
                    .filter(|(m, _)| m == method)
                    .flat_map(|(_, t)| t.iter().copied())
                    .collect::<Vec<f32>>()
            });
            let map = model.input_side * model.input_side * method.channels();
            let what = format!("{preset} {method}");
            let compare = |got: &[f32]| {
                Comparison::signed_maps(&what, got, &want, terms.as_deref(), map, options.bound)
                    .with_overlap(got, &want, method.channels(), map)
            };
            methods.push(compare(&got));
            let spread = compare(&spread).rel_l2;
            end_to_end.push(compare(&own).informative(spread));
        }
    }
    Ok(VerifyReport {
        device: device_name,
        precision: options.precision.to_string(),
        notes,
        model: model.name.clone(),
        images: fd.n,
        input_side: model.input_side,
        layers,
        methods,
        end_to_end,
    })
}

/// For every LRP explanation of `want`, in order, its method and its un-cancelled map `B|r|` on
/// the CPU (the backward pass is linear in its head with non-negative coefficients). The other
/// methods are compared without κ.
fn uncancelled(
    cpu: &Network<CpuBackend>,
    fwd: &Forward<CpuBackend>,
    want: &[ImageResult],
    preset: Preset,
) -> Result<Vec<(Method, Vec<f32>)>> {
    fn lrp(r: &ImageResult) -> impl Iterator<Item = &Explanation> {
        r.explanations.iter().filter(|e| e.method.is_lrp())
    }
    if !want.iter().any(|r| lrp(r).next().is_some()) {
        return Ok(Vec::new());
    }
    let classes = cpu.num_classes();
    let custom = |v: Vec<f32>| Request::new(Method::Custom(v), Target::Rank(1));
    // Per explanation: one head (|r|) or, for the two-pass preset, the target and others heads.
    let heads: Vec<Vec<Request>> = want
        .iter()
        .zip(cpu.logits(fwd)?.chunks(classes))
        .map(|(r, z)| {
            lrp(r)
                .flat_map(|e| {
                    if preset.two_pass() {
                        let (t, o) = innvestigate_heads(&e.method, z, e.target);
                        vec![custom(t), custom(o)]
                    } else {
                        vec![custom(e.head.iter().map(|v| v.abs()).collect())]
                    }
                })
                .collect()
        })
        .collect();
    let passes = cpu.explain_forward(fwd, &heads, preset)?;
    let mut terms = Vec::new();
    for (w, p) in want.iter().zip(passes) {
        let mut maps = p.explanations.into_iter().map(|e| e.relevance);
        for e in lrp(w) {
            let first = maps.next().expect("one pass per head");
            let map = if preset.two_pass() {
                add_scaled(first, &maps.next().expect("two passes per head"))
            } else {
                first
            };
            terms.push((e.method.clone(), map));
        }
    }
    Ok(terms)
}

/// `R_T + R_O · ΣR_T / ΣR_O`: the two-pass preset's combination without its minus sign.
fn add_scaled(mut target: Vec<f32>, others: &[f32]) -> Vec<f32> {
    let sum = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>();
    let sum_o = sum(others);
    if sum_o != 0.0 {
        let ratio = sum(&target) / sum_o;
        for (t, o) in target.iter_mut().zip(others) {
            *t = (*t as f64 + *o as f64 * ratio) as f32;
        }
    }
    target
}

/// Deterministic signed values in [−1, 1) for the relevance fed to each layer's ops.
fn signed(seed: u64, len: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Each layer's ops on both backends, fed the CPU's activations.
fn verify_layers<B: Backend>(
    model: &Model,
    dev: &B,
    cpu: &CpuBackend,
    input: &[f32],
    bound: f64,
) -> Result<Vec<Comparison>> {
    let names = model.layer_names();
    let dims = model.dims();
    let n = input.len() / (model.input_side * model.input_side * 3).max(1);
    let stab = Stabilizer::Epsilon(1e-6);
    let mut out = Vec::new();
    let mut x = input.to_vec();
    for (i, layer) in model.layers.iter().enumerate() {
        let (input_dims, output_dims) = dims[i];
        let name = &names[i];
        let xd = dev.upload(&x)?;
        let next = match layer {
            Layer::Conv(p) => {
                let s = ConvShape {
                    n,
                    h: input_dims.h,
                    w: input_dims.w,
                    cin: input_dims.c,
                    cout: output_dims.c,
                };
                let (wc, wd) = (cpu.prepare_conv(p)?, dev.prepare_conv(p)?);
                let want = cpu.conv3x3_forward(s, &x, &wc)?;
                let got = dev.download(&dev.conv3x3_forward(s, &xd, &wd)?)?;
                let map = s.output_len() / n;
                out.push(Comparison::maps(
                    format!("{name} forward"),
                    &got,
                    &want,
                    map,
                    bound,
                ));
                if i > 0 {
                    let (bias, stab) = (BiasMode::Positive, Stabilizer::Epsilon(1e-6));
                    let (_, qc) = cpu.conv3x3_dual(s, &x, &wc, bias, stab)?;
                    let (_, qd) = dev.conv3x3_dual(s, &xd, &wd, bias, stab)?;
                    out.push(Comparison::maps(
                        format!("{name} fused q"),
                        &dev.download(&qd)?,
                        &qc,
                        map,
                        bound,
                    ));
                    let r = signed(i as u64, s.output_len());
                    let rd = dev.upload(&r)?;
                    let set = WeightSet::Positive;
                    let qc = cpu.conv_quotient(s, 1, &x, &wc, set, BiasMode::None, stab, &r)?;
                    let qd = dev.conv_quotient(s, 1, &xd, &wd, set, BiasMode::None, stab, &rd)?;
                    let got = dev.download(&qd)?;
                    out.push(Comparison::maps(
                        format!("{name} quotient"),
                        &got,
                        &qc,
                        map,
                        bound,
                    ));
                    let cc = cpu.conv_transpose(s, 1, &qc, &wc, set, Some(&x))?;
                    let qd = dev.upload(&qc)?;
                    let cd =
                        dev.download(&dev.conv_transpose(s, 1, &qd, &wd, set, Some(&xd))?)?;
                    out.push(Comparison::maps(
                        format!("{name} redistribution"),
                        &cd,
                        &cc,
                        s.input_len() / n,
                        bound,
                    ));
                }
                want
            }
            Layer::Pool => {
                let s = PoolShape {
                    n,
                    h: input_dims.h,
                    w: input_dims.w,
                    c: input_dims.c,
                };
                let (want, idx) = cpu.maxpool_forward(s, &x)?;
                let (yd, idx_d) = dev.maxpool_forward(s, &xd)?;
                let map = s.output_len() / n;
                let got = dev.download(&yd)?;
                out.push(Comparison::maps(
                    format!("{name} forward"),
                    &got,
                    &want,
                    map,
                    bound,
                ));
                let r = signed(i as u64, s.output_len());
                let routed_c = cpu.maxpool_route(s, 1, &r, &idx)?;
                let routed_d =
                    dev.download(&dev.maxpool_route(s, 1, &dev.upload(&r)?, &idx_d)?)?;
                out.push(Comparison::maps(
                    format!("{name} routing"),
                    &routed_d,
                    &routed_c,
                    s.input_len() / n,
                    bound,
                ));
                want
            }
            Layer::Flatten => x.clone(),
            Layer::Dense(p) => {
                let s = DenseShape {
                    n,
                    inputs: input_dims.len(),
                    outputs: output_dims.c,
                };
                let relu = i + 1 < model.layers.len();
                let (wc, wd) = (cpu.prepare_dense(p)?, dev.prepare_dense(p)?);
                let want = cpu.dense_forward(s, &x, &wc, relu)?;
                let got = dev.download(&dev.dense_forward(s, &xd, &wd, relu)?)?;
                out.push(Comparison::maps(
                    format!("{name} forward"),
                    &got,
                    &want,
                    s.outputs,
                    bound,
                ));
                let (bias, fused_stab) = (BiasMode::Positive, Stabilizer::Epsilon(1e-6));
                let (_, qc) = cpu.dense_dual(s, &x, &wc, relu, bias, fused_stab)?;
                let (_, qd) = dev.dense_dual(s, &xd, &wd, relu, bias, fused_stab)?;
                out.push(Comparison::maps(
                    format!("{name} fused q"),
                    &dev.download(&qd)?,
                    &qc,
                    s.outputs,
                    bound,
                ));
                let r = signed(i as u64, n * s.outputs);
                let rd = dev.upload(&r)?;
                let qc = cpu.dense_quotient(s, 1, &x, &wc, BiasMode::None, stab, &r)?;
                let qd = dev.dense_quotient(s, 1, &xd, &wd, BiasMode::None, stab, &rd)?;
                let got = dev.download(&qd)?;
                out.push(Comparison::maps(
                    format!("{name} quotient"),
                    &got,
                    &qc,
                    s.outputs,
                    bound,
                ));
                let cc = cpu.dense_transpose(s, 1, &qc, &wc, WeightSet::Positive, Some(&x))?;
                let qd = dev.upload(&qc)?;
                let cd = dev.dense_transpose(s, 1, &qd, &wd, WeightSet::Positive, Some(&xd))?;
                let got = dev.download(&cd)?;
                out.push(Comparison::maps(
                    format!("{name} redistribution"),
                    &got,
                    &cc,
                    s.inputs,
                    bound,
                ));
                want
            }
        };
        x = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-map comparison of `rel_l2` (got = want · (1 + rel_l2)).
    fn comparison(what: &str, rel_l2: f64) -> Comparison {
        let want = [3.0f32, 4.0];
        let got = want.map(|v| (v as f64 * (1.0 + rel_l2)) as f32);
        Comparison::maps(what, &got, &want, 2, F32_BOUND)
    }

    #[test]
    fn merge_keeps_the_worst_of_each_comparison() {
        let report = |images, layer, method, own: f64| VerifyReport {
            device: "cuda:0".into(),
            precision: "f32".into(),
            notes: Vec::new(),
            model: "m".into(),
            images,
            input_side: 32,
            layers: vec![comparison("conv1_1 forward", layer)],
            methods: vec![comparison("paper lrp", method)],
            end_to_end: vec![comparison("paper lrp", own).informative(own / 2.0)],
        };
        let mut total = report(8, 1e-6, 2e-4, 1e-3);
        total.merge(report(3, 3e-5, 1e-7, 1e-2));
        assert_eq!(total.images, 11);
        assert!(
            (total.layers[0].rel_l2 - 3e-5).abs() < 1e-7,
            "{}",
            total.layers[0].rel_l2
        );
        assert!(total.layers[0].pass);
        assert!((total.methods[0].rel_l2 - 2e-4).abs() < 1e-7);
        assert!(!total.methods[0].pass);
        assert_eq!(total.end_to_end[0].reference_spread, Some(5e-3));
        // End-to-end maps inform: past the bound, they fail nothing.
        assert_eq!(total.failures().len(), 1);
        assert!(total.to_markdown().contains("CPU spread"));
    }

    #[test]
    fn a_cancelling_map_is_held_to_the_bound_of_its_terms() {
        // want = P − N with ‖P + N‖ = 1000 ‖want‖: κ = 1000.
        let want = [1.0f32, -1.0];
        let terms = [1000.0f32, 1000.0];
        let got = [1.05f32, -1.05]; // rel L2 5e-2 = 5e-5 of the terms
        let c = Comparison::signed_maps("paper clrp", &got, &want, Some(&terms), 2, F32_BOUND);
        assert!((c.cancellation - 1000.0).abs() < 1e-9);
        assert!(c.pass, "{c:?}");
        let got = [1.2f32, -1.2]; // 2e-4 of the terms
        let c = Comparison::signed_maps("paper clrp", &got, &want, Some(&terms), 2, F32_BOUND);
        assert!(!c.pass);
        // Each map has its own κ: a well-conditioned map does not borrow another's.
        let want = [1.0f32, -1.0, 1.0, 1.0];
        let terms = [1000.0f32, 1000.0, 1.0, 1.0];
        let got = [1.0f32, -1.0, 1.01, 1.0];
        let c = Comparison::signed_maps("paper clrp", &got, &want, Some(&terms), 2, F32_BOUND);
        assert!(!c.pass, "{c:?}");
        // NaN never passes, whatever κ.
        let c =
            Comparison::signed_maps("x", &[f32::NAN, 1.0], &want[..2], Some(&terms[..2]), 2, 1.0);
        assert!(!c.pass);
    }

    #[test]
    fn the_two_pass_terms_add_what_the_preset_subtracts() {
        let (target, others) = (vec![2.0f32, 2.0], [1.0f32, 3.0]);
        // ratio ΣT/ΣO = 1: T − O = [1, −1], T + O = [3, 5].
        assert_eq!(add_scaled(target.clone(), &others), vec![3.0, 5.0]);
        assert_eq!(add_scaled(target.clone(), &[0.0, 0.0]), target);
    }

    #[test]
    fn top_overlap_counts_the_shared_top_pixels_and_forgives_ties_within_the_bound() {
        // 40 pixels of one channel: the top 5 % are 2 pixels.
        let want: Vec<f32> = (0..40).map(|i| i as f32).collect();
        assert_eq!(top_overlap(&want, &want, 1, F32_BOUND), 1.0);
        // got's top two are 39 and 0: one of two is among want's top.
        let mut got = want.clone();
        got[0] = 100.0;
        got[38] = 0.0;
        assert_eq!(top_overlap(&got, &want, 1, F32_BOUND), 0.5);
        // Two pixels that tie within the bound may swap places.
        let mut close = want.clone();
        close[37] = 38.0 - 1e-3;
        let mut swapped = close.clone();
        swapped.swap(37, 38);
        assert_eq!(top_overlap(&swapped, &close, 1, 1e-4), 1.0);
        assert_eq!(top_overlap(&swapped, &close, 1, 1e-7), 0.5);
        // Channels are summed into the positive heatmap: (2, 1, 40) maps.
        let two: Vec<f32> = want.iter().chain(&want).copied().collect();
        assert_eq!(top_overlap(&two, &two, 2, F32_BOUND), 1.0);
        let c = Comparison::maps("m", &got, &want, 40, 1e-3).with_overlap(&got, &want, 1, 40);
        assert!(!c.pass && c.top_overlap == Some(0.5), "{c:?}");
        let c = Comparison::maps("m", &want, &want, 40, 1e-3).with_overlap(&want, &want, 1, 40);
        assert!(c.pass && c.top_overlap == Some(1.0), "{c:?}");
    }
}
