//! `sglrp verify`: the CPU reference against another backend (the GPU) on the same inputs, with
//! the bounds of SPEC §9. Two levels:
//! - per layer: each layer's ops run on both backends from the same CPU activations (so errors
//!   do not compound), forward and, for z⁺ layers, the quotient and the redistribution;
//! - per method: whole explanations (logits, then every method of every preset asked for).
//!
//! The CLI only parses arguments and prints [`VerifyReport`].

use serde::Serialize;

use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, BiasMode, ConvShape, DenseShape, PoolShape, Stabilizer, WeightSet};
use crate::error::Result;
use crate::explain::{Method, Network, Preset, Request, Target};
use crate::model::{Layer, Model};

/// SPEC §9: CUDA f32 against the CPU reference, relative L2 per map.
pub const F32_BOUND: f64 = 1e-4;

/// One comparison: a device result against the CPU's.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// What was compared: `conv3_2 forward`, `zennit sglrp`, `logits`.
    pub what: String,
    pub max_abs: f64,
    /// Worst relative L2 over the maps compared (one per image and head).
    pub rel_l2: f64,
    pub bound: f64,
    pub pass: bool,
}

/// `‖a − b‖₂ / ‖b‖₂`, infinite when either holds a NaN or an Inf (SPEC §9: none ever passes).
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    if norm == 0.0 {
        return if diff == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (diff / norm).sqrt()
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
        let (mut worst, mut abs) = (0.0f64, 0.0f64);
        if got.len() != want.len() || map == 0 {
            worst = f64::INFINITY;
            abs = f64::INFINITY;
        } else {
            for (g, w) in got.chunks(map).zip(want.chunks(map)) {
                worst = worst.max(rel_l2(g, w));
                abs = abs.max(max_abs(g, w));
            }
        }
        Comparison {
            what: what.into(),
            max_abs: abs,
            rel_l2: worst,
            bound,
            pass: worst <= bound,
        }
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
    pub bound: f64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            presets: Preset::ALL.to_vec(),
            methods: Method::PAPER.to_vec(),
            targets: vec![Target::Rank(1), Target::Rank(2)],
            layers: true,
            bound: F32_BOUND,
        }
    }
}

/// Everything `sglrp verify` prints.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub device: String,
    pub model: String,
    pub images: usize,
    pub input_side: usize,
    pub layers: Vec<Comparison>,
    pub methods: Vec<Comparison>,
}

impl VerifyReport {
    pub fn passed(&self) -> bool {
        self.layers.iter().chain(&self.methods).all(|c| c.pass)
    }

    pub fn failures(&self) -> Vec<&Comparison> {
        self.layers
            .iter()
            .chain(&self.methods)
            .filter(|c| !c.pass)
            .collect()
    }

    /// Folds in the report of the same comparisons on further images: the worst of each.
    pub fn merge(&mut self, other: VerifyReport) {
        self.images += other.images;
        let theirs = other.layers.into_iter().chain(other.methods);
        for (mine, theirs) in self.layers.iter_mut().chain(&mut self.methods).zip(theirs) {
            debug_assert_eq!(mine.what, theirs.what);
            mine.max_abs = mine.max_abs.max(theirs.max_abs);
            mine.rel_l2 = mine.rel_l2.max(theirs.rel_l2);
            mine.pass &= theirs.pass;
        }
    }

    /// A markdown table of every comparison.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "verify: {} against the CPU reference, {} ({} images, {}×{})\n\n\
             | comparison | max abs | rel L2 | bound | |\n|---|---|---|---|---|\n",
            self.device, self.model, self.images, self.input_side, self.input_side
        );
        for c in self.layers.iter().chain(&self.methods) {
            s.push_str(&format!(
                "| {} | {:.3e} | {:.3e} | {:.0e} | {} |\n",
                c.what,
                c.max_abs,
                c.rel_l2,
                c.bound,
                if c.pass { "ok" } else { "FAIL" }
            ));
        }
        s.push_str(if self.passed() {
            "\nall comparisons within SPEC §9\n"
        } else {
            "\nSOME COMPARISONS EXCEED SPEC §9\n"
        });
        s
    }
}

/// Verifies `device` against the CPU reference on `input` `(N, S, S, 3)` (pre-processed).
pub fn verify<B: Backend>(
    model: &Model,
    device: B,
    cpu: CpuBackend,
    input: &[f32],
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    let device_name = device.name();
    let layers = if options.layers {
        verify_layers(model, &device, &cpu, input, options.bound)?
    } else {
        Vec::new()
    };
    let dev = Network::new(device, model)?;
    let cpu = Network::new(cpu, model)?;
    let (fd, fc) = (dev.forward(input)?, cpu.forward(input)?);
    let classes = cpu.num_classes();
    let mut methods = vec![Comparison::maps(
        "logits",
        &fd.logits,
        &fc.logits,
        classes,
        options.bound,
    )];
    let requests: Vec<Request> = options
        .targets
        .iter()
        .flat_map(|t| options.methods.iter().map(|m| Request::new(m.clone(), *t)))
        .collect();
    let requests = vec![requests; fd.n];
    for preset in &options.presets {
        let rd = dev.explain_forward(&fd, &requests, *preset)?;
        let rc = cpu.explain_forward(&fc, &requests, *preset)?;
        for method in &options.methods {
            let (mut got, mut want) = (Vec::new(), Vec::new());
            for (d, c) in rd.iter().zip(&rc) {
                for (ed, ec) in d.explanations.iter().zip(&c.explanations) {
                    if &ec.method == method {
                        got.extend_from_slice(&ed.relevance);
                        want.extend_from_slice(&ec.relevance);
                    }
                }
            }
            let map = model.input_side * model.input_side * method.channels();
            methods.push(Comparison::maps(
                format!("{preset} {method}"),
                &got,
                &want,
                map,
                options.bound,
            ));
        }
    }
    Ok(VerifyReport {
        device: device_name,
        model: model.name.clone(),
        images: fd.n,
        input_side: model.input_side,
        layers,
        methods,
    })
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

    fn comparison(what: &str, rel_l2: f64) -> Comparison {
        Comparison {
            what: what.into(),
            max_abs: rel_l2 * 10.0,
            rel_l2,
            bound: F32_BOUND,
            pass: rel_l2 <= F32_BOUND,
        }
    }

    #[test]
    fn merge_keeps_the_worst_of_each_comparison() {
        let report = |images, layer, method| VerifyReport {
            device: "cuda:0".into(),
            model: "m".into(),
            images,
            input_side: 32,
            layers: vec![comparison("conv1_1 forward", layer)],
            methods: vec![comparison("paper lrp", method)],
        };
        let mut total = report(8, 1e-6, 2e-4);
        total.merge(report(3, 3e-5, 1e-7));
        assert_eq!(total.images, 11);
        assert_eq!(total.layers[0].rel_l2, 3e-5);
        assert_eq!(total.layers[0].max_abs, comparison("", 3e-5).max_abs);
        assert!(total.layers[0].pass);
        assert_eq!(total.methods[0].rel_l2, 2e-4);
        assert!(!total.methods[0].pass);
        assert_eq!(total.failures().len(), 1);
    }
}
