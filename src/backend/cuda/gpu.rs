//! The launchers: [`GpuBackend`] implements [`Backend`] on any [`Device`] by launching the
//! kernels of `kernels/`, one launcher per op with the same name stem as the kernel file and the
//! CPU twin. Each checks its buffers against the shape, allocates the output and picks the
//! geometry from `config.rs`, the file that also defines the kernels' tile sizes.

use std::cell::{OnceCell, RefCell};

use super::config::{self, Geometry, MmaMath};
use super::device::{Arg, Device};
use super::mma::{self, MmaConv, MmaDense, Storage, ZPlus};
use super::registry::{self, Kernel, Op, Variant};
use super::runtime::{Graphs, Pipeline, Ticket};
use crate::backend::{
    Backend, BiasMode, ConvShape, DenseShape, KernelUse, LayerTimer, Mask, PassKey, PoolShape,
    Precision, Range, Stabilizer, WeightSet, Work,
};
use crate::error::{Error, Result};
use crate::heatmap::HeatmapKind;
use crate::model::{ConvParams, DenseParams};

/// A device buffer of `len` values: f32, or bf16 pairs (what the BF16 tensor-core kernels write).
pub struct GpuBuf<D: Device> {
    pub(super) mem: D::Mem,
    pub(super) len: usize,
    pub(super) storage: Storage,
}

/// A device buffer of u32 argmax indices.
pub struct GpuIndex<D: Device> {
    pub(super) mem: D::Mem,
    pub(super) len: usize,
}

impl<D: Device> GpuBuf<D> {
    /// The device memory, for [`Device`] calls.
    pub fn mem(&self) -> &D::Mem {
        &self.mem
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn storage(&self) -> Storage {
        self.storage
    }
}

impl<D: Device> GpuIndex<D> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A conv layer's weights in the device layouts, made by `prepare.cu` at load time.
pub struct GpuConv<D: Device> {
    pub cin: usize,
    pub cout: usize,
    pub(super) w: D::Mem, // (9·Cin, Cout): k = tap·Cin + ci, the implicit-GEMM operand
    pub(super) w_pos: D::Mem, // (9·Cin, Cout), max(w, 0)
    pub(super) wt: D::Mem, // (9·Cout, Cin): flipped and transposed, for conv3x3ᵀ
    pub(super) wt_pos: D::Mem, // (9·Cout, Cin), max(w, 0)
    pub(super) bias: D::Mem, // (Cout): β of the bias mode `full`
    pub(super) bias_pos: D::Mem, // (Cout): β of the bias mode `positive`
    /// The tensor-core layouts, per math, packed from the above when first used.
    pub(super) mma: MmaCache<MmaConv<D>>,
}

/// A dense layer's weights on the device.
pub struct GpuDense<D: Device> {
    pub inputs: usize,
    pub outputs: usize,
    pub(super) w: D::Mem,        // (out, in)
    pub(super) w_pos: D::Mem,    // (out, in), max(w, 0)
    pub(super) bias: D::Mem,     // (out)
    pub(super) bias_pos: D::Mem, // (out), max(b, 0)
    pub(super) mma: MmaCache<MmaDense<D>>,
}

/// A layer's tensor-core weights for each [`MmaMath`], made on first use (the precision may
/// change after the weights are prepared).
pub(super) struct MmaCache<T>([OnceCell<T>; 3]);

impl<T> Default for MmaCache<T> {
    fn default() -> Self {
        MmaCache(Default::default())
    }
}

impl<T> MmaCache<T> {
    pub(super) fn get_or_make(
        &self,
        math: MmaMath,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<&T> {
        let cell = &self.0[math as usize];
        if cell.get().is_none() {
            let _ = cell.set(make()?);
        }
        Ok(cell.get().expect("set above"))
    }
}

/// The time one range took on the device.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTime {
    /// The range's name: `forward/conv3_2`.
    pub name: String,
    pub ms: f64,
}

type Spans<E> = Vec<(String, E, E)>;

/// The CUDA backend's ops on a [`Device`].
pub struct GpuBackend<D: Device> {
    /// The captured passes of [`Backend::run_pass`] (declared before the device: they go first).
    graphs: Box<RefCell<Graphs<D>>>,
    /// Whether [`Backend::run_pass`] captures graphs.
    use_graphs: bool,
    /// The pinned buffers and events of [`Backend::submit_pass`]'s copies.
    copies: Box<RefCell<Pipeline<D>>>,
    device: D,
    /// The kernel family (tensor cores where the device has them; the direct `_v1` checkers on
    /// request).
    variant: Variant,
    /// The arithmetic asked for; [`registry::select`] picks the kernels.
    precision: Precision,
    /// Open spans while per-range timing is on: (name, start, end) in the order they closed.
    timing: RefCell<Option<Spans<D::Event>>>,
}

pub(super) fn check(op: &str, what: &str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::Backend {
            backend: "cuda",
            op: op.into(),
            message: format!("{what} has {got} values, expected {expected}"),
        })
    }
}

pub(super) fn int(op: &str, v: usize) -> Result<Arg> {
    i32::try_from(v).map(Arg::I32).map_err(|_| Error::Backend {
        backend: "cuda",
        op: op.into(),
        message: format!("size {v} does not fit the kernel's 32-bit sizes"),
    })
}

pub(super) fn geometry(op: &str, g: Option<Geometry>) -> Result<Geometry> {
    g.ok_or_else(|| Error::Backend {
        backend: "cuda",
        op: op.into(),
        message: "too large for one launch".into(),
    })
}

pub(super) fn stab_args(stab: Stabilizer) -> [Arg; 2] {
    match stab {
        Stabilizer::Epsilon(eps) => [Arg::I32(0), Arg::F32(eps)],
        Stabilizer::ZeroTo(v) => [Arg::I32(1), Arg::F32(v)],
    }
}

impl<D: Device> GpuBackend<D> {
    pub fn from_device(device: D) -> Self {
        GpuBackend {
            graphs: Box::default(),
            use_graphs: true,
            copies: Box::new(RefCell::new(
                Pipeline::new(config::PASS_SLOTS).expect("PASS_SLOTS ≥ 1"),
            )),
            variant: Self::default_variant(&device),
            device,
            precision: Precision::F32,
            timing: RefCell::new(None),
        }
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    fn default_variant(device: &D) -> Variant {
        if device.tensor_cores() {
            Variant::Mma
        } else {
            Variant::Simt
        }
    }

    /// Runs the conv ops with the direct `_v1` kernels (the checkers) instead of the tiled ones;
    /// `false` goes back to the device's default family.
    pub fn set_direct(&mut self, direct: bool) {
        let variant = if direct {
            Variant::Direct
        } else {
            Self::default_variant(&self.device)
        };
        self.set_variant(variant);
    }

    /// Chooses the kernel family ([`Variant::Mma`] needs tensor cores: sm_80 or later). The
    /// graphs captured with other kernels are dropped.
    pub fn set_variant(&mut self, variant: Variant) {
        self.variant = variant;
        self.graphs.get_mut().clear();
    }

    /// Whether [`Backend::run_pass`] captures a CUDA graph per key and replays it (default:
    /// yes; off, every pass launches its kernels one by one, as while layers are timed).
    pub fn set_graphs(&mut self, on: bool) {
        self.use_graphs = on;
        self.graphs.get_mut().clear();
    }

    /// The graphs captured and replayed so far: (captures, replays).
    pub fn graph_counts(&self) -> (usize, usize) {
        let graphs = self.graphs.borrow();
        (graphs.captures(), graphs.replays())
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Starts (or stops) timing every range with device events; [`Self::take_layer_times`]
    /// returns what was recorded.
    pub fn set_layer_timing(&self, on: bool) {
        *self.timing.borrow_mut() = on.then(Vec::new);
    }

    /// The ranges closed since timing started, in the order they closed, and clears them
    /// (timing stays on). Waits for the device.
    pub fn take_layer_times(&self) -> Result<Vec<LayerTime>> {
        let spans = match self.timing.borrow_mut().as_mut() {
            Some(spans) => std::mem::take(spans),
            None => return Ok(Vec::new()),
        };
        spans
            .into_iter()
            .map(|(name, start, end)| {
                Ok(LayerTime {
                    ms: self.device.elapsed_ms(&start, &end)?,
                    name,
                })
            })
            .collect()
    }

    pub(super) fn alloc(&self, len: usize) -> Result<GpuBuf<D>> {
        self.alloc_in(len, Storage::F32)
    }

    pub(super) fn alloc_in(&self, len: usize, storage: Storage) -> Result<GpuBuf<D>> {
        Ok(GpuBuf {
            mem: self.device.alloc(storage.words(len))?,
            len,
            storage,
        })
    }

    /// A buffer of `len` values from the device's arena, contents unspecified.
    pub fn alloc_buf(&self, len: usize) -> Result<GpuBuf<D>> {
        self.alloc(len)
    }

    /// Copies `src` into `dst` (same length) on the compute stream.
    pub fn copy_buf(&self, dst: &GpuBuf<D>, src: &GpuBuf<D>) -> Result<()> {
        check("copy", "source", src.len, dst.len)?;
        if src.storage != dst.storage {
            return Err(Error::Backend {
                backend: "cuda",
                op: "copy".into(),
                message: format!("{:?} source, {:?} destination", src.storage, dst.storage),
            });
        }
        self.device
            .copy(&dst.mem, &src.mem, src.storage.words(src.len))
    }

    pub(super) fn ptr(&self, mem: &D::Mem) -> Arg {
        Arg::Ptr(self.device.ptr(mem))
    }

    /// Launches unless the grid is empty (a zero-sized output).
    ///
    /// # Safety
    /// As [`Device::launch`].
    pub(super) unsafe fn launch(
        &self,
        kernel: &'static str,
        g: Geometry,
        args: &[Arg],
    ) -> Result<()> {
        if g.grid.0 == 0 || g.grid.1 == 0 || g.grid.2 == 0 {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.device.launch(kernel, g, args) }
    }

    fn positive(&self, src: &D::Mem, len: usize) -> Result<D::Mem> {
        let dst = self.device.alloc(len)?;
        let g = geometry("positive", config::elementwise(len as u64))?;
        let args = [self.ptr(src), self.ptr(&dst), Arg::I64(len as i64)];
        // SAFETY: `positive(const float*, float*, long long)`; src and dst hold `len` floats.
        unsafe { self.launch("positive", g, &args)? };
        Ok(dst)
    }

    fn conv_weights(&self, w: &GpuConv<D>, set: WeightSet, transposed: bool) -> Arg {
        self.ptr(match (set, transposed) {
            (WeightSet::Plain, false) => &w.w,
            (WeightSet::Positive, false) => &w.w_pos,
            (WeightSet::Plain, true) => &w.wt,
            (WeightSet::Positive, true) => &w.wt_pos,
        })
    }

    /// The geometry of a conv kernel: tiled, or one thread per output for `_v1`.
    pub(super) fn conv_geometry(
        &self,
        op: &str,
        positions: usize,
        channels: usize,
    ) -> Result<Geometry> {
        geometry(
            op,
            if self.variant == Variant::Direct {
                config::elementwise((positions * channels) as u64)
            } else {
                config::conv_tiled(positions as u64, channels as u64)
            },
        )
    }

    /// The SIMT or direct kernel of `op` (docs/gpu.md: the registry); the tensor-core rows
    /// are taken by [`Self::mma_math`] before a launcher gets here.
    pub(super) fn kernel(&self, op: Op) -> &'static str {
        let variant = match self.variant {
            Variant::Mma => Variant::Simt,
            v => v,
        };
        match registry::select(op, variant, self.precision).kernel {
            Kernel::Named(name) => name,
            Kernel::Mma(..) => unreachable!("the direct and SIMT rows name their kernel"),
        }
    }

    /// The math of `op`'s tensor-core kernel, when the registry picks one.
    pub(super) fn mma_math(&self, op: Op) -> Option<MmaMath> {
        match registry::select(op, self.variant, self.precision).kernel {
            Kernel::Mma(_, math) => Some(math),
            Kernel::Named(_) => None,
        }
    }

    pub(super) fn check_conv(op: &str, s: ConvShape, w: &GpuConv<D>) -> Result<()> {
        if w.cin != s.cin || w.cout != s.cout {
            return Err(Error::Backend {
                backend: "cuda",
                op: op.into(),
                message: format!(
                    "weights are {}→{} channels, the shape asks for {}→{}",
                    w.cin, w.cout, s.cin, s.cout
                ),
            });
        }
        Ok(())
    }

    /// The split-K partial sums of `w · x` over the input slices of `config::dense_split`:
    /// (slices, n, out), for the reduce kernel of the op.
    fn dense_partial(
        &self,
        op: &str,
        kernel: &'static str,
        s: DenseShape,
        x: &GpuBuf<D>,
        w: &D::Mem,
    ) -> Result<GpuBuf<D>> {
        let (slices, k_slice) = config::dense_split(s.inputs as u64, s.outputs as u64, s.n as u64);
        let partial = self.alloc(slices as usize * s.n * s.outputs)?;
        let g = geometry(
            op,
            config::dense_partial(s.outputs as u64, s.n as u64, slices),
        )?;
        let args = [
            self.ptr(&x.mem),
            self.ptr(w),
            self.ptr(&partial.mem),
            int(op, s.n)?,
            int(op, s.inputs)?,
            int(op, s.outputs)?,
            int(op, k_slice as usize)?,
        ];
        // SAFETY: `dense_{forward,quotient}_partial(const float* x, const float* w,
        // float* partial, int n, int in, int out, int k_slice)`; x holds n·in floats and w
        // out·in (checked by the callers), partial slices·n·out with slices = the grid's z
        // extent, each slice k_slice columns.
        unsafe { self.launch(kernel, g, &args)? };
        Ok(partial)
    }

    pub(super) fn check_dense(op: &str, s: DenseShape, w: &GpuDense<D>) -> Result<()> {
        if w.inputs != s.inputs || w.outputs != s.outputs {
            return Err(Error::Backend {
                backend: "cuda",
                op: op.into(),
                message: format!(
                    "weights are {}→{}, the shape asks for {}→{}",
                    w.inputs, w.outputs, s.inputs, s.outputs
                ),
            });
        }
        Ok(())
    }
}

impl<D: Device> Backend for GpuBackend<D> {
    type Buf = GpuBuf<D>;
    type Index = GpuIndex<D>;
    type Conv = GpuConv<D>;
    type Dense = GpuDense<D>;
    type Pending = Ticket<D>;

    fn name(&self) -> String {
        self.device.name()
    }

    fn layer_timer(&self) -> Option<&dyn LayerTimer> {
        Some(self)
    }

    fn range(&self, name: &str) -> Range<'_> {
        self.device.range_push(name);
        let start = if self.timing.borrow().is_some() {
            self.device.event().ok()
        } else {
            None
        };
        let name = name.to_string();
        Range::new(move || {
            if let Some(start) = start
                && let Ok(end) = self.device.event()
                && let Some(spans) = self.timing.borrow_mut().as_mut()
            {
                spans.push((name, start, end));
            }
            self.device.range_pop();
        })
    }

    fn set_precision(&mut self, precision: Precision) -> Option<String> {
        self.precision = precision;
        self.graphs.get_mut().clear();
        registry::fallback_note(self.variant(), precision)
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    /// Every op of the registry, as [`registry::select`] picks its kernel now, the transposed
    /// conv of narrow layers after its row where it applies; the other ops have one f32 kernel
    /// each.
    fn kernels(&self) -> Vec<KernelUse> {
        let mut kernels = Vec::new();
        for op in Op::ALL {
            let e = registry::select(op, self.variant, self.precision);
            kernels.push(KernelUse {
                op: op.name().into(),
                kernel: e.kernel_name(),
                precision: e.precision,
            });
            // A layer of one input channel: whether this variant takes the narrow kernel at all.
            if op == Op::ConvTranspose && registry::narrow_transpose(self.variant, 1) {
                kernels.push(KernelUse {
                    op: format!("conv_transpose, Cin ≤ {}", config::NARROW_MAX_CIN),
                    kernel: registry::NARROW_TRANSPOSE.into(),
                    precision: Precision::F32,
                });
            }
        }
        kernels.push(KernelUse {
            op: "every other op (pooling, ReLU, z^B ends, scaling, heads, heatmaps)".into(),
            kernel: "its one f32 kernel".into(),
            precision: Precision::F32,
        });
        kernels
    }

    fn upload(&self, host: &[f32]) -> Result<GpuBuf<D>> {
        mma::upload(self, host, Storage::F32)
    }

    fn submit_pass(
        &self,
        key: Option<PassKey>,
        inputs: &[&[f32]],
        pass: &Work<'_, GpuBuf<D>>,
    ) -> Result<Ticket<D>> {
        // Timed ranges record events, which a capture cannot hold.
        let capture = self.use_graphs && self.timing.borrow().is_none();
        self.copies
            .borrow_mut()
            .submit(self, inputs, |b, bufs| match key {
                Some(key) if capture => {
                    let mut graphs = self.graphs.borrow_mut();
                    let room = graphs.holds(&key) || graphs.len() < config::MAX_GRAPHS;
                    if room && graphs.seen(key) {
                        graphs.run(b, key, bufs, |_, xs| pass(xs))
                    } else {
                        drop(graphs);
                        pass(bufs)
                    }
                }
                _ => pass(bufs),
            })
    }

    fn finish_pass(&self, ticket: Ticket<D>) -> Result<Vec<Vec<f32>>> {
        self.copies.borrow_mut().finish(self, ticket)
    }

    fn clone_buf(&self, x: &GpuBuf<D>) -> Result<GpuBuf<D>> {
        let copy = self.alloc_in(x.len, x.storage)?;
        self.copy_buf(&copy, x)?;
        Ok(copy)
    }

    fn download_index(&self, idx: &GpuIndex<D>) -> Result<Vec<u32>> {
        let words = self.device.download(&idx.mem, idx.len)?;
        Ok(words.into_iter().map(f32::to_bits).collect())
    }

    fn heads(
        &self,
        logits: &GpuBuf<D>,
        classes: usize,
        rows: usize,
        table: &GpuBuf<D>,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        self.launch_heads(logits, classes, rows, table)
    }

    fn download(&self, buf: &GpuBuf<D>) -> Result<Vec<f32>> {
        mma::download(self, buf)
    }

    fn prepare_conv(&self, p: &ConvParams) -> Result<GpuConv<D>> {
        let len = 9 * p.cin * p.cout;
        check("prepare_conv", "weight", p.weight.len(), len)?;
        check("prepare_conv", "bias", p.bias.len(), p.cout)?;
        let src = self.device.upload(&p.weight)?;
        let (w, w_pos, wt, wt_pos) = (
            self.device.alloc(len)?,
            self.device.alloc(len)?,
            self.device.alloc(len)?,
            self.device.alloc(len)?,
        );
        let g = geometry("prepare_conv", config::elementwise(len as u64))?;
        let args = [
            self.ptr(&src),
            self.ptr(&w),
            self.ptr(&w_pos),
            self.ptr(&wt),
            self.ptr(&wt_pos),
            int("prepare_conv", p.cin)?,
            int("prepare_conv", p.cout)?,
        ];
        // SAFETY: `prepare_conv(const float*, float*, float*, float*, float*, int, int)`; every
        // buffer holds 9·Cin·Cout floats, the count the kernel walks.
        unsafe { self.launch("prepare_conv", g, &args)? };
        let bias = self.device.upload(&p.bias)?;
        let bias_pos = self.positive(&bias, p.cout)?;
        Ok(GpuConv {
            cin: p.cin,
            cout: p.cout,
            w,
            w_pos,
            wt,
            wt_pos,
            bias,
            bias_pos,
            mma: MmaCache::default(),
        })
    }

    fn prepare_dense(&self, p: &DenseParams) -> Result<GpuDense<D>> {
        check(
            "prepare_dense",
            "weight",
            p.weight.len(),
            p.inputs * p.outputs,
        )?;
        check("prepare_dense", "bias", p.bias.len(), p.outputs)?;
        let w = self.device.upload(&p.weight)?;
        let w_pos = self.positive(&w, p.weight.len())?;
        let bias = self.device.upload(&p.bias)?;
        let bias_pos = self.positive(&bias, p.outputs)?;
        Ok(GpuDense {
            inputs: p.inputs,
            outputs: p.outputs,
            w,
            w_pos,
            bias,
            bias_pos,
            mma: MmaCache::default(),
        })
    }

    fn conv3x3_forward(&self, s: ConvShape, x: &GpuBuf<D>, w: &GpuConv<D>) -> Result<GpuBuf<D>> {
        if let Some(math) = self.mma_math(Op::ConvForward) {
            return self.mma_conv_forward(s, x, w, math);
        }
        let op = "conv3x3_forward";
        Self::check_conv(op, s, w)?;
        check(op, "x", x.len, s.input_len())?;
        let y = self.alloc(s.output_len())?;
        let g = self.conv_geometry(op, s.n * s.h * s.w, s.cout)?;
        let args = [
            self.ptr(&x.mem),
            self.conv_weights(w, WeightSet::Plain, false),
            self.ptr(&w.bias),
            self.ptr(&y.mem),
            int(op, s.n)?,
            int(op, s.h)?,
            int(op, s.w)?,
            int(op, s.cin)?,
            int(op, s.cout)?,
        ];
        // SAFETY: `conv3x3_forward[_v1](const float* x, const float* w, const float* bias,
        // float* y, int n, int h, int w, int cin, int cout)`; x holds N·H·W·Cin floats (checked),
        // w 9·Cin·Cout and bias Cout (prepared for this shape, checked), y N·H·W·Cout.
        unsafe { self.launch(self.kernel(Op::ConvForward), g, &args)? };
        Ok(y)
    }

    fn maxpool_forward(&self, s: PoolShape, x: &GpuBuf<D>) -> Result<(GpuBuf<D>, GpuIndex<D>)> {
        let op = "maxpool_forward";
        let mut tmp = None;
        let x = self.as_f32(x, &mut tmp)?;
        check(op, "x", x.len, s.input_len())?;
        let y = self.alloc(s.output_len())?;
        let idx = GpuIndex {
            mem: self.device.alloc(s.output_len())?,
            len: s.output_len(),
        };
        let g = geometry(op, config::elementwise(s.output_len() as u64))?;
        let args = [
            self.ptr(&x.mem),
            self.ptr(&y.mem),
            self.ptr(&idx.mem),
            int(op, s.n)?,
            int(op, s.h)?,
            int(op, s.w)?,
            int(op, s.c)?,
        ];
        // SAFETY: `maxpool_forward(const float*, float*, unsigned*, int n, int h, int w, int c)`;
        // x holds N·H·W·C floats (checked), y and idx N·(H/2)·(W/2)·C words each.
        unsafe { self.launch(op, g, &args)? };
        Ok((y, idx))
    }

    fn dense_forward(
        &self,
        s: DenseShape,
        x: &GpuBuf<D>,
        w: &GpuDense<D>,
        relu: bool,
    ) -> Result<GpuBuf<D>> {
        if let Some(math) = self.mma_math(Op::DenseForward) {
            return self.mma_dense_forward(s, x, w, relu, math);
        }
        let op = "dense_forward";
        Self::check_dense(op, s, w)?;
        check(op, "x", x.len, s.n * s.inputs)?;
        let y = self.alloc(s.n * s.outputs)?;
        let partial = self.dense_partial(op, "dense_forward_partial", s, x, &w.w)?;
        let g = geometry(op, config::elementwise((s.n * s.outputs) as u64))?;
        let args = [
            self.ptr(&partial.mem),
            self.ptr(&w.bias),
            self.ptr(&y.mem),
            int(op, s.n)?,
            int(op, s.outputs)?,
            int(op, partial.len / (s.n * s.outputs).max(1))?,
            Arg::I32(relu as i32),
        ];
        // SAFETY: `dense_forward_reduce(const float* partial, const float* bias, float* y,
        // int n, int out, int slices, int relu)`; partial holds slices·n·out floats, bias out
        // (checked), y n·out.
        unsafe { self.launch("dense_forward_reduce", g, &args)? };
        Ok(y)
    }

    fn conv_quotient(
        &self,
        s: ConvShape,
        heads: usize,
        a: &GpuBuf<D>,
        w: &GpuConv<D>,
        set: WeightSet,
        bias: BiasMode,
        stab: Stabilizer,
        r: &GpuBuf<D>,
    ) -> Result<GpuBuf<D>> {
        let op = "conv_quotient";
        let (mut ta, mut tr) = (None, None);
        let (a, r) = (self.as_f32(a, &mut ta)?, self.as_f32(r, &mut tr)?);
        Self::check_conv(op, s, w)?;
        check(op, "a", a.len, s.input_len())?;
        check(op, "r", r.len, s.output_len() * heads)?;
        let out = self.alloc(r.len)?;
        let beta = match bias {
            BiasMode::None => Arg::Ptr(0),
            BiasMode::Positive => self.ptr(&w.bias_pos),
            BiasMode::Full => self.ptr(&w.bias),
        };
        let g = self.conv_geometry(op, s.n * s.h * s.w, s.cout)?;
        let [kind, value] = stab_args(stab);
        let args = [
            self.ptr(&a.mem),
            self.conv_weights(w, set, false),
            beta,
            self.ptr(&r.mem),
            self.ptr(&out.mem),
            int(op, s.n)?,
            int(op, heads)?,
            int(op, s.h)?,
            int(op, s.w)?,
            int(op, s.cin)?,
            int(op, s.cout)?,
            kind,
            value,
        ];
        // SAFETY: `conv_quotient[_v1](const float* a, const float* w, const float* beta,
        // const float* r, float* s, int n, int heads, int h, int w, int cin, int cout,
        // int stab_kind, float stab_value)`; a holds N·H·W·Cin floats, r and s N·K·H·W·Cout
        // (checked), w 9·Cin·Cout, beta Cout or null.
        unsafe { self.launch(self.kernel(Op::ConvQuotient), g, &args)? };
        Ok(out)
    }

    fn conv_transpose(
        &self,
        s: ConvShape,
        heads: usize,
        g: &GpuBuf<D>,
        w: &GpuConv<D>,
        set: WeightSet,
        act: Option<&GpuBuf<D>>,
    ) -> Result<GpuBuf<D>> {
        // Narrow layers (the z^B first layer) take the narrow kernel in every variant but the
        // checkers: a tile over so few output channels would leave most of its width idle.
        let narrow = registry::narrow_transpose(self.variant, s.cin);
        if !narrow && let Some(math) = self.mma_math(Op::ConvTranspose) {
            return self.mma_conv_transpose(s, heads, g, w, set, act, math);
        }
        let op = "conv_transpose";
        Self::check_conv(op, s, w)?;
        let rows = s.n * heads;
        check(op, "g", g.len, s.output_len() * heads)?;
        if let Some(act) = act {
            check(op, "act", act.len, s.input_len())?;
        }
        // The SIMT kernels read f32; the narrow one also runs under bf16 storage.
        let (mut tg, mut ta) = (None, None);
        let g = self.as_f32(g, &mut tg)?;
        let act = match act {
            Some(a) => Some(self.as_f32(a, &mut ta)?),
            None => None,
        };
        let out = self.alloc(s.input_len() * heads)?;
        let (kernel, geo) = if narrow {
            let tiles = config::conv_transpose_narrow(rows as u64, s.h as u64, s.w as u64);
            (registry::NARROW_TRANSPOSE, geometry(op, tiles)?)
        } else {
            let geo = self.conv_geometry(op, rows * s.h * s.w, s.cin)?;
            (self.kernel(Op::ConvTranspose), geo)
        };
        let args = [
            self.ptr(&g.mem),
            self.conv_weights(w, set, true),
            act.map_or(Arg::Ptr(0), |a| self.ptr(&a.mem)),
            self.ptr(&out.mem),
            int(op, rows)?,
            int(op, heads)?,
            int(op, s.h)?,
            int(op, s.w)?,
            int(op, s.cout)?,
            int(op, s.cin)?,
        ];
        // SAFETY: `conv_transpose[_v1|_narrow](const float* g, const float* wt, const float* act,
        // float* out, int rows, int heads, int h, int w, int cout, int cin)`; g holds
        // rows·H·W·Cout floats, act N·H·W·Cin or null (checked, f32), wt 9·Cout·Cin, out
        // rows·H·W·Cin; the narrow grid has a block per tile of each row.
        unsafe { self.launch(kernel, geo, &args)? };
        Ok(out)
    }

    fn dense_quotient(
        &self,
        s: DenseShape,
        heads: usize,
        a: &GpuBuf<D>,
        w: &GpuDense<D>,
        bias: BiasMode,
        stab: Stabilizer,
        r: &GpuBuf<D>,
    ) -> Result<GpuBuf<D>> {
        let op = "dense_quotient";
        let (mut ta, mut tr) = (None, None);
        let (a, r) = (self.as_f32(a, &mut ta)?, self.as_f32(r, &mut tr)?);
        Self::check_dense(op, s, w)?;
        check(op, "a", a.len, s.n * s.inputs)?;
        check(op, "r", r.len, s.n * heads * s.outputs)?;
        let out = self.alloc(r.len)?;
        let beta = match bias {
            BiasMode::None => Arg::Ptr(0),
            BiasMode::Positive => self.ptr(&w.bias_pos),
            BiasMode::Full => self.ptr(&w.bias),
        };
        let partial = self.dense_partial(op, "dense_quotient_partial", s, a, &w.w_pos)?;
        let g = geometry(op, config::elementwise((s.n * s.outputs) as u64))?;
        let [kind, value] = stab_args(stab);
        let args = [
            self.ptr(&partial.mem),
            beta,
            self.ptr(&r.mem),
            self.ptr(&out.mem),
            int(op, s.n)?,
            int(op, heads)?,
            int(op, s.outputs)?,
            int(op, partial.len / (s.n * s.outputs).max(1))?,
            kind,
            value,
        ];
        // SAFETY: `dense_quotient_reduce(const float* partial, const float* beta,
        // const float* r, float* s, int n, int heads, int out, int slices, int stab_kind,
        // float stab_value)`; partial holds slices·n·out floats, r and s n·K·out (checked),
        // beta out or null.
        unsafe { self.launch("dense_quotient_reduce", g, &args)? };
        Ok(out)
    }

    fn dense_transpose(
        &self,
        s: DenseShape,
        heads: usize,
        g: &GpuBuf<D>,
        w: &GpuDense<D>,
        set: WeightSet,
        act: Option<&GpuBuf<D>>,
    ) -> Result<GpuBuf<D>> {
        if let Some(math) = self.mma_math(Op::DenseTranspose) {
            return self.mma_dense_transpose(s, heads, g, w, set, act, math);
        }
        let op = "dense_transpose";
        Self::check_dense(op, s, w)?;
        let rows = s.n * heads;
        check(op, "g", g.len, rows * s.outputs)?;
        if let Some(act) = act {
            check(op, "act", act.len, s.n * s.inputs)?;
        }
        let slices = config::dense_transpose_slices(s.outputs as u64) as usize;
        let partial = self.alloc(slices * rows * s.inputs)?;
        let out = self.alloc(rows * s.inputs)?;
        let geo = geometry(
            op,
            config::dense_transpose_partial(s.inputs as u64, s.outputs as u64, rows as u64),
        )?;
        let weights = match set {
            WeightSet::Plain => &w.w,
            WeightSet::Positive => &w.w_pos,
        };
        let args = [
            self.ptr(&g.mem),
            self.ptr(weights),
            self.ptr(&partial.mem),
            int(op, rows)?,
            int(op, s.inputs)?,
            int(op, s.outputs)?,
        ];
        // SAFETY: `dense_transpose_partial(const float* g, const float* w, float* partial,
        // int rows, int in, int out)`; g holds rows·out floats (checked), w out·in, partial
        // slices·rows·in with slices = ⌈out / DT_SLICE⌉, the grid's y extent.
        unsafe { self.launch("dense_transpose_partial", geo, &args)? };
        let geo = geometry(op, config::elementwise((rows * s.inputs) as u64))?;
        let args = [
            self.ptr(&partial.mem),
            act.map_or(Arg::Ptr(0), |a| self.ptr(&a.mem)),
            self.ptr(&out.mem),
            int(op, rows)?,
            int(op, heads)?,
            int(op, s.inputs)?,
            int(op, slices)?,
        ];
        // SAFETY: `dense_transpose_reduce(const float* partial, const float* act, float* c,
        // int rows, int heads, int in, int slices)`; partial as above, act n·in or null
        // (checked), c rows·in.
        unsafe { self.launch("dense_transpose_reduce", geo, &args)? };
        Ok(out)
    }

    fn conv3x3_dual(
        &self,
        s: ConvShape,
        x: &GpuBuf<D>,
        w: &GpuConv<D>,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        match self.mma_math(Op::ConvDual) {
            Some(math) => self.mma_conv_dual(s, x, w, ZPlus { bias, stab }, math),
            None => self.launch_conv_dual(s, x, w, bias, stab),
        }
    }

    fn dense_dual(
        &self,
        s: DenseShape,
        x: &GpuBuf<D>,
        w: &GpuDense<D>,
        relu: bool,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        match self.mma_math(Op::DenseDual) {
            Some(math) => self.mma_dense_dual(s, x, w, relu, (bias, stab), math),
            None => self.launch_dense_dual(s, x, w, relu, bias, stab),
        }
    }

    fn maxpool_route_scaled(
        &self,
        s: PoolShape,
        heads: usize,
        c: &GpuBuf<D>,
        argmax: &GpuIndex<D>,
        m: &GpuBuf<D>,
    ) -> Result<GpuBuf<D>> {
        let (mut tc, mut tm) = (None, None);
        let (c, m) = (self.as_f32(c, &mut tc)?, self.as_f32(m, &mut tm)?);
        self.launch_route(s, heads, c, argmax, Some(m))
    }

    fn scale_heads(
        &self,
        n: usize,
        heads: usize,
        r: &GpuBuf<D>,
        m: &GpuBuf<D>,
    ) -> Result<GpuBuf<D>> {
        let (mut tr, mut tm) = (None, None);
        let (r, m) = (self.as_f32(r, &mut tr)?, self.as_f32(m, &mut tm)?);
        self.launch_scale_heads(n, heads, r, m)
    }

    fn maxpool_route(
        &self,
        s: PoolShape,
        heads: usize,
        r: &GpuBuf<D>,
        argmax: &GpuIndex<D>,
    ) -> Result<GpuBuf<D>> {
        let mut tmp = None;
        let r = self.as_f32(r, &mut tmp)?;
        self.launch_route(s, heads, r, argmax, None)
    }

    fn relu_backward(
        &self,
        n: usize,
        heads: usize,
        g: &mut GpuBuf<D>,
        y: &GpuBuf<D>,
        mask: Mask,
    ) -> Result<()> {
        let op = "relu_backward";
        if g.storage != Storage::F32 {
            let mut tmp = None;
            self.as_f32(g, &mut tmp)?;
            *g = tmp.expect("converted");
        }
        let mut ty = None;
        let y = self.as_f32(y, &mut ty)?;
        let map = y.len / n.max(1);
        check(op, "y", y.len, n * map)?;
        check(op, "g", g.len, n * heads * map)?;
        let geo = geometry(op, config::elementwise(g.len as u64))?;
        let args = [
            self.ptr(&g.mem),
            self.ptr(&y.mem),
            Arg::I64((n * heads) as i64),
            Arg::I64(map as i64),
            int(op, heads)?,
            Arg::I32((mask == Mask::Guided) as i32),
        ];
        // SAFETY: `relu_backward(float* g, const float* y, long long rows, long long map,
        // int heads, int guided)`; g holds rows·map floats and y n·map (checked).
        unsafe { self.launch(op, geo, &args)? };
        Ok(())
    }

    fn zbox_input(&self, x: &GpuBuf<D>, bounds: &GpuBuf<D>) -> Result<GpuBuf<D>> {
        let op = "zbox_input";
        let (mut tx, mut tb) = (None, None);
        let (x, bounds) = (self.as_f32(x, &mut tx)?, self.as_f32(bounds, &mut tb)?);
        let c = bounds.len / 2;
        check(op, "bounds", bounds.len, 2 * c.max(1))?;
        let pixels = x.len / c;
        check(op, "x", x.len, pixels * c)?;
        let out = self.alloc(2 * x.len)?;
        let geo = geometry(op, config::elementwise(out.len as u64))?;
        let args = [
            self.ptr(&x.mem),
            self.ptr(&bounds.mem),
            self.ptr(&out.mem),
            Arg::I64(pixels as i64),
            int(op, c)?,
        ];
        // SAFETY: `zbox_input(const float* x, const float* bounds, float* out, long long pixels,
        // int c)`; x holds pixels·c floats, bounds 2c and out 2·pixels·c (checked, allocated).
        unsafe { self.launch(op, geo, &args)? };
        Ok(out)
    }

    fn heatmap(&self, r: &GpuBuf<D>, channels: usize, kind: HeatmapKind) -> Result<GpuBuf<D>> {
        self.launch_heatmap(r, channels, kind)
    }

    fn zbox_sum(&self, halves: &GpuBuf<D>, channels: usize) -> Result<GpuBuf<D>> {
        let op = "zbox_sum";
        let mut tmp = None;
        let halves = self.as_f32(halves, &mut tmp)?;
        let pixels = halves.len / (2 * channels).max(1);
        check(op, "halves", halves.len, 2 * channels.max(1) * pixels)?;
        let out = self.alloc(pixels * channels)?;
        let geo = geometry(op, config::elementwise(out.len as u64))?;
        let args = [
            self.ptr(&halves.mem),
            self.ptr(&out.mem),
            Arg::I64(pixels as i64),
            int(op, channels)?,
        ];
        // SAFETY: `zbox_sum(const float* halves, float* out, long long pixels, int c)`; halves
        // holds pixels·2c floats (checked) and out pixels·c (allocated).
        unsafe { self.launch(op, geo, &args)? };
        Ok(out)
    }
}

impl<D: Device> LayerTimer for GpuBackend<D> {
    fn start_layer_timing(&self) {
        self.set_layer_timing(true);
    }
    fn stop_layer_timing(&self) -> Result<Vec<LayerTime>> {
        let times = self.take_layer_times();
        self.set_layer_timing(false);
        times
    }
}
