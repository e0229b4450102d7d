//! The CPU reference backend: plain, multithreaded, deterministic. It is the oracle that every
//! GPU result is checked against.

pub mod conv;
pub mod dense;
pub mod gemm;
pub mod heads;
pub mod pool;

use rayon::prelude::*;

use super::{
    Backend, BiasMode, ConvShape, DenseShape, KernelUse, Mask, PassKey, PoolShape, Precision,
    Stabilizer, WeightSet, Work, heads_mismatch,
};
use crate::error::{Error, Result};
use crate::heatmap::HeatmapKind;
use crate::model::{ConvParams, DenseParams};
pub use conv::CpuConv;
pub use dense::CpuDense;

/// β for a bias mode (docs/method.md §Rules), or `None` when it is zero.
pub fn beta(bias: &[f32], mode: BiasMode) -> Option<Vec<f32>> {
    match mode {
        BiasMode::None => None,
        BiasMode::Positive => Some(bias.iter().map(|b| b.max(0.0)).collect()),
        BiasMode::Full => Some(bias.to_vec()),
    }
}

/// Runs every op on its own rayon thread pool.
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    /// Whether the user was told that a precision other than f32 is ignored.
    precision_noted: bool,
}

impl CpuBackend {
    /// A backend with `threads` worker threads (`None`: one per core).
    pub fn new(threads: Option<usize>) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.unwrap_or(0))
            .thread_name(|i| format!("sglrp-cpu-{i}"))
            .build()
            .map_err(|e| Error::Backend {
                backend: "cpu",
                op: "thread pool".into(),
                message: e.to_string(),
            })?;
        Ok(CpuBackend {
            pool,
            precision_noted: false,
        })
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

impl Backend for CpuBackend {
    type Buf = Vec<f32>;
    type Index = Vec<u32>;
    type Conv = CpuConv;
    type Dense = CpuDense;
    type Pending = Vec<Vec<f32>>;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn set_precision(&mut self, precision: Precision) -> Option<String> {
        if precision == Precision::F32 || self.precision_noted {
            return None;
        }
        self.precision_noted = true;
        Some(format!(
            "the CPU backend computes in f32; --precision {precision} applies to the CUDA backend only"
        ))
    }

    fn precision(&self) -> Precision {
        Precision::F32
    }

    fn kernels(&self) -> Vec<KernelUse> {
        vec![KernelUse {
            op: "every op".into(),
            kernel: "the CPU reference (src/backend/cpu)".into(),
            precision: Precision::F32,
        }]
    }

    fn upload(&self, host: &[f32]) -> Result<Vec<f32>> {
        Ok(host.to_vec())
    }

    fn submit_pass(
        &self,
        _key: Option<PassKey>,
        inputs: &[&[f32]],
        pass: &Work<'_, Vec<f32>>,
    ) -> Result<Vec<Vec<f32>>> {
        let inputs: Vec<Vec<f32>> = inputs.iter().map(|x| x.to_vec()).collect();
        pass(&inputs)
    }

    fn finish_pass(&self, done: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        Ok(done)
    }

    fn clone_buf(&self, x: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(x.clone())
    }

    fn download(&self, buf: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buf.clone())
    }

    fn prepare_conv(&self, params: &ConvParams) -> Result<CpuConv> {
        Ok(CpuConv::new(params))
    }

    fn prepare_dense(&self, params: &DenseParams) -> Result<CpuDense> {
        Ok(CpuDense::new(params))
    }

    fn conv3x3_forward(&self, s: ConvShape, x: &Vec<f32>, w: &CpuConv) -> Result<Vec<f32>> {
        Ok(self.pool.install(|| conv::conv3x3_forward(s, x, w)))
    }

    fn maxpool_forward(&self, s: PoolShape, x: &Vec<f32>) -> Result<(Vec<f32>, Vec<u32>)> {
        Ok(self.pool.install(|| pool::maxpool_forward(s, x)))
    }

    fn dense_forward(
        &self,
        s: DenseShape,
        x: &Vec<f32>,
        w: &CpuDense,
        relu: bool,
    ) -> Result<Vec<f32>> {
        Ok(self
            .pool
            .install(|| dense::dense_forward(s, x, &w.w, Some(&w.bias), relu)))
    }

    fn conv_quotient(
        &self,
        s: ConvShape,
        heads: usize,
        a: &Vec<f32>,
        w: &CpuConv,
        set: WeightSet,
        bias: BiasMode,
        stab: Stabilizer,
        r: &Vec<f32>,
    ) -> Result<Vec<f32>> {
        let weights = match set {
            WeightSet::Plain => &w.w,
            WeightSet::Positive => &w.w_pos,
        };
        let beta = beta(&w.bias, bias);
        Ok(self
            .pool
            .install(|| conv::conv_quotient(s, heads, a, weights, beta.as_deref(), stab, r)))
    }

    fn conv_transpose(
        &self,
        s: ConvShape,
        heads: usize,
        g: &Vec<f32>,
        w: &CpuConv,
        set: WeightSet,
        act: Option<&Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let weights = match set {
            WeightSet::Plain => &w.wt,
            WeightSet::Positive => &w.wt_pos,
        };
        Ok(self
            .pool
            .install(|| conv::conv_transpose(s, heads, g, weights, act.map(Vec::as_slice))))
    }

    fn dense_quotient(
        &self,
        s: DenseShape,
        heads: usize,
        a: &Vec<f32>,
        w: &CpuDense,
        bias: BiasMode,
        stab: Stabilizer,
        r: &Vec<f32>,
    ) -> Result<Vec<f32>> {
        let beta = beta(&w.bias, bias);
        Ok(self
            .pool
            .install(|| dense::dense_quotient(s, heads, a, &w.w_pos, beta.as_deref(), stab, r)))
    }

    fn dense_transpose(
        &self,
        s: DenseShape,
        heads: usize,
        g: &Vec<f32>,
        w: &CpuDense,
        set: WeightSet,
        act: Option<&Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let weights = match set {
            WeightSet::Plain => &w.w,
            WeightSet::Positive => &w.w_pos,
        };
        Ok(self
            .pool
            .install(|| dense::dense_transpose(s, heads, g, weights, act.map(Vec::as_slice))))
    }

    fn conv3x3_dual(
        &self,
        s: ConvShape,
        x: &Vec<f32>,
        w: &CpuConv,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let beta = beta(&w.bias, bias);
        Ok(self
            .pool
            .install(|| conv::conv3x3_dual(s, x, w, beta.as_deref(), stab)))
    }

    fn dense_dual(
        &self,
        s: DenseShape,
        x: &Vec<f32>,
        w: &CpuDense,
        relu: bool,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let beta = beta(&w.bias, bias);
        Ok(self
            .pool
            .install(|| dense::dense_dual(s, x, w, relu, beta.as_deref(), stab)))
    }

    fn maxpool_route_scaled(
        &self,
        s: PoolShape,
        heads: usize,
        c: &Vec<f32>,
        argmax: &Vec<u32>,
        m: &Vec<f32>,
    ) -> Result<Vec<f32>> {
        check_len("maxpool_route_scaled", "m", m.len(), s.input_len())?;
        let routed = self
            .pool
            .install(|| pool::maxpool_route(s, heads, c, argmax));
        let map = s.input_len() / s.n.max(1);
        Ok(self
            .pool
            .install(|| pool::scale_heads(map, heads, &routed, m)))
    }

    fn scale_heads(&self, n: usize, heads: usize, r: &Vec<f32>, m: &Vec<f32>) -> Result<Vec<f32>> {
        check_len("scale_heads", "r", r.len(), m.len() * heads)?;
        if n == 0 || !m.len().is_multiple_of(n) {
            return Err(Error::Backend {
                backend: "cpu",
                op: "scale_heads".into(),
                message: format!("m has {} values, not whole maps of {n} images", m.len()),
            });
        }
        let map = m.len() / n;
        Ok(self.pool.install(|| pool::scale_heads(map, heads, r, m)))
    }

    fn maxpool_route(
        &self,
        s: PoolShape,
        heads: usize,
        r: &Vec<f32>,
        argmax: &Vec<u32>,
    ) -> Result<Vec<f32>> {
        Ok(self
            .pool
            .install(|| pool::maxpool_route(s, heads, r, argmax)))
    }

    fn relu_backward(
        &self,
        n: usize,
        heads: usize,
        g: &mut Vec<f32>,
        y: &Vec<f32>,
        mask: Mask,
    ) -> Result<()> {
        let map = y.len() / n.max(1);
        self.pool.install(|| {
            g.par_chunks_mut(map).enumerate().for_each(|(row, g_map)| {
                let y_map = &y[(row / heads) * map..][..map];
                for (gv, yv) in g_map.iter_mut().zip(y_map) {
                    let pass = *yv > 0.0 && (mask == Mask::Relu || *gv > 0.0);
                    if !pass {
                        *gv = 0.0;
                    }
                }
            })
        });
        Ok(())
    }

    fn zbox_input(&self, x: &Vec<f32>, bounds: &Vec<f32>) -> Result<Vec<f32>> {
        let c = bounds.len() / 2;
        check_zbox("zbox_input", x.len(), c, bounds.len())?;
        let (low, high) = bounds.split_at(c);
        Ok(x.chunks_exact(c)
            .flat_map(|px| {
                let lo = px.iter().zip(low).map(|(v, l)| v - l);
                lo.chain(px.iter().zip(high).map(|(v, h)| v - h))
            })
            .collect())
    }

    fn heads(
        &self,
        logits: &Vec<f32>,
        classes: usize,
        rows: usize,
        table: &Vec<f32>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        if let Some(message) = heads_mismatch(logits.len(), classes, rows, table.len()) {
            return Err(Error::Backend {
                backend: "cpu",
                op: "heads".into(),
                message,
            });
        }
        Ok(heads::heads(logits, classes, rows, table))
    }

    fn download_index(&self, idx: &Vec<u32>) -> Result<Vec<u32>> {
        Ok(idx.clone())
    }

    fn heatmap(&self, r: &Vec<f32>, channels: usize, kind: HeatmapKind) -> Result<Vec<f32>> {
        if channels == 0 || !r.len().is_multiple_of(channels) {
            return Err(Error::Backend {
                backend: "cpu",
                op: "heatmap".into(),
                message: format!(
                    "{} values are not whole pixels of {channels} channels",
                    r.len()
                ),
            });
        }
        Ok(r.chunks_exact(channels)
            .map(|px| px.iter().map(|&v| kind.term(v)).sum())
            .collect())
    }

    fn zbox_sum(&self, halves: &Vec<f32>, channels: usize) -> Result<Vec<f32>> {
        check_zbox("zbox_sum", halves.len(), 2 * channels, 2 * channels)?;
        Ok(halves
            .chunks_exact(2 * channels)
            .flat_map(|px| (0..channels).map(move |k| px[k] + px[channels + k]))
            .collect())
    }
}

fn check_len(op: &str, what: &str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        return Ok(());
    }
    Err(Error::Backend {
        backend: "cpu",
        op: op.into(),
        message: format!("{what} has {got} values, expected {expected}"),
    })
}

/// The z^B ops' shapes: `len` whole pixels of `channels`, and an even, non-zero `pairs`.
fn check_zbox(op: &str, len: usize, channels: usize, pairs: usize) -> Result<()> {
    if channels == 0 || !pairs.is_multiple_of(2) || !len.is_multiple_of(channels) {
        return Err(Error::Backend {
            backend: "cpu",
            op: op.into(),
            message: format!(
                "{len} values are not whole pixels of {channels} channels (bounds: {pairs} values, \
                 expected 2 per channel)"
            ),
        });
    }
    Ok(())
}
