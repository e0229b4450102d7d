//! `sglrp bench`: images/s for the forward pass and each method at several batch sizes, per-layer
//! times (device events on the GPU, through the backend's ranges), achieved TFLOP/s and the
//! fraction of the card's f32 peak. The CLI only parses arguments and prints [`BenchReport`].

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::backend::{Backend, KernelUse, Precision, kernel_lines};
use crate::error::Result;
use crate::explain::{Method, Network, Preset, Request, Target};
use crate::model::{
    ConvParams, DenseParams, Layer, LayerSpec, Model, Preprocess, infer_dims, layer_costs, vgg16,
};

pub use crate::backend::LayerTimer;
pub use crate::backend::open::peak_f32_tflops;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub batch_sizes: Vec<usize>,
    pub methods: Vec<Method>,
    pub preset: Preset,
    /// Timed repetitions per measurement (after one warm-up run).
    pub repeats: usize,
    /// Per-layer times at the largest batch size, when the backend can time ranges.
    pub layer_times: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            batch_sizes: vec![1, 8, 32],
            methods: Method::PAPER.to_vec(),
            preset: Preset::Paper,
            repeats: 5,
            layer_times: true,
        }
    }
}

/// One measurement: a pass (`forward`, `lrp`, …) at one batch size.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub pass: String,
    pub batch: usize,
    pub ms_per_batch: f64,
    pub images_per_s: f64,
    /// Arithmetic of the pass per image, GFLOP (convolutions and dense layers).
    pub gflop_per_image: f64,
    pub tflops: f64,
    /// `tflops` over the card's f32 peak, when the card is known.
    pub fraction_of_peak: Option<f64>,
}

/// The time of one layer of one pass, averaged over its occurrences.
#[derive(Clone, Debug, Serialize)]
pub struct LayerRow {
    /// `forward/conv3_2`, `relevance/conv3_2`.
    pub range: String,
    pub batch: usize,
    pub ms: f64,
    pub tflops: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub device: String,
    /// What the device is, for the header: the card, or the CPU's threads.
    pub hardware: String,
    pub card: Option<String>,
    pub peak_f32_tflops: Option<f64>,
    pub model: String,
    pub input_side: usize,
    pub preset: String,
    /// The precision the kernels were asked for, and what ran each op at it.
    pub precision: Precision,
    pub kernels: Vec<KernelUse>,
    pub rows: Vec<BenchRow>,
    pub layers: Vec<LayerRow>,
}

impl BenchReport {
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "bench: {} ({}), {} {}×{}, preset {}, precision {}\n\nkernels:\n{}\n\
             | pass | batch | ms/batch | images/s | GFLOP/image | TFLOP/s | of peak |\n\
             |---|---|---|---|---|---|---|\n",
            self.device,
            self.hardware,
            self.model,
            self.input_side,
            self.input_side,
            self.preset,
            self.precision,
            kernel_lines(&self.kernels)
        );
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {:.2} | {:.1} | {:.1} | {:.2} | {} |\n",
                r.pass,
                r.batch,
                r.ms_per_batch,
                r.images_per_s,
                r.gflop_per_image,
                r.tflops,
                r.fraction_of_peak
                    .map_or("-".into(), |f| format!("{:.0} %", 100.0 * f))
            ));
        }
        if !self.layers.is_empty() {
            s.push_str("\n| range | batch | ms | TFLOP/s |\n|---|---|---|---|\n");
            for l in &self.layers {
                s.push_str(&format!(
                    "| {} | {} | {:.3} | {} |\n",
                    l.range,
                    l.batch,
                    l.ms,
                    l.tflops.map_or("-".into(), |t| format!("{t:.2}"))
                ));
            }
        }
        s
    }
}

/// Runs the benchmark. `images(n)` gives `n` pre-processed images; `timer` times layers when
/// given (pass `Some(net.backend())` for the CUDA backend); `card` names the GPU for the peak.
pub fn bench<B: Backend>(
    net: &Network<B>,
    images: &dyn Fn(usize) -> Vec<f32>,
    options: &BenchOptions,
    timer: Option<&dyn LayerTimer>,
    card: Option<String>,
) -> Result<BenchReport> {
    let info = net.info();
    let per_layer: Vec<(String, f64)> = layer_costs(&info.specs, &info.dims)
        .iter()
        .zip(&info.layer_names)
        .map(|(c, name)| (name.clone(), c.forward as f64))
        .collect();
    let forward_per_layer: Vec<f64> = per_layer.iter().map(|(_, f)| *f).collect();
    let forward: f64 = forward_per_layer.iter().sum();
    let cam_stop = net.gradcam_layer() + 1;
    let peak = card.as_deref().and_then(peak_f32_tflops);
    let mut rows = Vec::new();
    let time = |run: &dyn Fn() -> Result<()>| -> Result<f64> {
        run()?; // warm-up
        let start = Instant::now();
        for _ in 0..options.repeats.max(1) {
            run()?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e3 / options.repeats.max(1) as f64)
    };
    let row = |pass: &str, batch: usize, ms: f64, flops: f64| {
        let tflops = flops * batch as f64 / (ms * 1e-3) / 1e12;
        BenchRow {
            pass: pass.into(),
            batch,
            ms_per_batch: ms,
            images_per_s: batch as f64 / (ms * 1e-3),
            gflop_per_image: flops / 1e9,
            tflops,
            fraction_of_peak: peak.map(|p| tflops / p),
        }
    };
    for &batch in &options.batch_sizes {
        let input = images(batch);
        let ms = time(&|| net.classify(&input).map(|_| ()))?;
        rows.push(row("forward", batch, ms, forward));
        for method in &options.methods {
            let request = [Request::new(method.clone(), Target::Rank(1))];
            let ms = time(&|| {
                net.explain_each(&input, &request, options.preset)
                    .map(|_| ())
            })?;
            let flops = method.flops(&forward_per_layer, cam_stop);
            rows.push(row(method.name(), batch, ms, flops));
        }
    }
    let mut layers = Vec::new();
    if let (Some(timer), true, Some(&batch)) =
        (timer, options.layer_times, options.batch_sizes.iter().max())
    {
        let input = images(batch);
        let method = options.methods.first().cloned().unwrap_or(Method::Sglrp);
        let request = [Request::new(method, Target::Rank(1))];
        net.explain_each(&input, &request, options.preset)?; // warm-up
        timer.start_layer_timing();
        net.explain_each(&input, &request, options.preset)?;
        let times = timer.stop_layer_timing()?;
        let flops: BTreeMap<&str, f64> = per_layer.iter().map(|(n, f)| (n.as_str(), *f)).collect();
        for t in times {
            let layer = t.name.split('/').nth(1).unwrap_or("");
            // forward: one product; relevance: the quotient and one redistribution per head.
            let per_image = flops.get(layer).copied().unwrap_or(0.0)
                * if t.name.starts_with("forward/") {
                    1.0
                } else {
                    2.0
                };
            layers.push(LayerRow {
                tflops: (per_image > 0.0 && t.ms > 0.0)
                    .then(|| per_image * batch as f64 / (t.ms * 1e-3) / 1e12),
                range: t.name,
                batch,
                ms: t.ms,
            });
        }
    }
    Ok(BenchReport {
        device: net.backend().name(),
        hardware: card.clone().unwrap_or_default(),
        card,
        peak_f32_tflops: peak,
        model: info.name.clone(),
        input_side: info.input_side,
        preset: options.preset.name().into(),
        precision: net.backend().precision(),
        kernels: net.backend().kernels(),
        rows,
        layers,
    })
}

/// Deterministic pseudo-random values in [−bound, bound) (xorshift, as benches/cpu.rs).
pub fn values(seed: u64, len: usize, bound: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
        })
        .collect()
}

/// VGG16 (1000 classes) with He-uniform random weights, the same values as benches/cpu.rs.
pub fn random_vgg16(side: usize) -> Result<Model> {
    let specs = vgg16(1000);
    let dims = infer_dims(&specs, side)?;
    let layers = specs
        .iter()
        .zip(&dims)
        .enumerate()
        .filter_map(|(i, (spec, (input, output)))| {
            Some(match *spec {
                LayerSpec::Conv(cout) => Layer::Conv(ConvParams {
                    cin: input.c,
                    cout,
                    weight: values(
                        i as u64,
                        cout * input.c * 9,
                        (6.0 / (9 * input.c) as f32).sqrt(),
                    ),
                    bias: values(1000 + i as u64, cout, 0.1),
                }),
                LayerSpec::Dense(n) => Layer::Dense(DenseParams {
                    inputs: input.len(),
                    outputs: n,
                    weight: values(i as u64, n * input.len(), (6.0 / input.len() as f32).sqrt()),
                    bias: values(1000 + i as u64, output.c, 0.1),
                }),
                LayerSpec::Pool => Layer::Pool,
                LayerSpec::Flatten => Layer::Flatten,
                LayerSpec::Affine => return None,
            })
        })
        .collect();
    Ok(Model {
        name: "VGG16, random weights".into(),
        layers,
        input_side: side,
        preprocess: Preprocess::torchvision(),
        classes: Model::default_classes(1000),
    })
}

/// `n` pre-processed random images inside the z^B box (pixels uniform in 0‥255).
pub fn random_images(model: &Model, n: usize, seed: u64) -> Vec<f32> {
    let pixels: Vec<f32> = values(seed, n * model.input_side * model.input_side * 3, 1.0)
        .into_iter()
        .map(|v| (v + 1.0) * 127.5)
        .collect();
    model.preprocess.normalize(&pixels)
}
