//! Launchers of the tensor-core kernels (`kernels/conv_mma.cu`, `kernels/dense_mma.cu`): the
//! weights in their layouts, the buffers in their storage (f32, or bf16 for the BF16 kernels),
//! and the three ops of a layer from docs/gpu.md — the forward pass, the fused z / z⁺ forward
//! (a′ and q), and the transposed W / W⁺ pass with its per-image multiplier. The tile table of
//! `config.rs` picks each kernel and its launch.
//!
//! Weights are packed on the device from a prepared layer's f32 layouts (`mma_pack.cu`), once
//! per math: n-major, each row of K = taps·Cin values padded with zeros to a multiple of
//! [`config::MMA_KPAD`] (so every pipeline stage of B is whole), bf16 pairs in one word for
//! [`MmaMath::Bf16`]. The transposed conv uses the flipped kernel with input and output channels
//! swapped, the transposed dense layer Wᵀ.

use super::config::{self, Entry, MmaMath, MmaOp};
use super::device::{Arg, Device};
use super::gpu::{GpuBackend, GpuBuf, GpuConv, GpuDense};
use crate::backend::{BiasMode, Stabilizer, WeightSet};
use crate::error::{Error, Result};

/// How a tensor's values are stored on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// One f32 per 4-byte word.
    F32,
    /// Two bf16 per word, the even element in the low half.
    Bf16,
}

impl Storage {
    /// Words that hold `len` values.
    pub fn words(self, len: usize) -> usize {
        match self {
            Storage::F32 => len,
            Storage::Bf16 => len.div_ceil(2),
        }
    }

    /// The storage of `math`'s activations, quotients and weights.
    pub fn of(math: MmaMath) -> Storage {
        if math.bf16() {
            Storage::Bf16
        } else {
            Storage::F32
        }
    }
}

/// bf16 bits of `x`, to nearest even (as `cvt.rn.bf16x2.f32`).
pub fn bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if x.is_nan() {
        return 0x7fc0;
    }
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

fn encode(values: &[f32], storage: Storage) -> Vec<f32> {
    match storage {
        Storage::F32 => values.to_vec(),
        Storage::Bf16 => values
            .chunks(2)
            .map(|p| {
                let lo = bf16_bits(p[0]) as u32;
                let hi = p.get(1).map_or(0, |&v| bf16_bits(v) as u32);
                f32::from_bits(lo | hi << 16)
            })
            .collect(),
    }
}

fn decode(words: &[f32], len: usize, storage: Storage) -> Vec<f32> {
    match storage {
        Storage::F32 => words[..len].to_vec(),
        Storage::Bf16 => (0..len)
            .map(|i| {
                let w = words[i / 2].to_bits();
                f32::from_bits(if i % 2 == 0 { w << 16 } else { w & 0xffff_0000 })
            })
            .collect(),
    }
}

fn error(op: &str, message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "cuda",
        op: op.into(),
        message: message.into(),
    }
}

fn int(op: &str, v: usize) -> Result<Arg> {
    i32::try_from(v).map(Arg::I32).map_err(|_| {
        error(
            op,
            format!("size {v} does not fit the kernel's 32-bit sizes"),
        )
    })
}

fn flag(v: bool) -> Arg {
    Arg::I32(v as i32)
}

fn stab_args(stab: Stabilizer) -> [Arg; 2] {
    match stab {
        Stabilizer::Epsilon(eps) => [Arg::I32(0), Arg::F32(eps)],
        Stabilizer::ZeroTo(v) => [Arg::I32(1), Arg::F32(v)],
    }
}

/// Copies `host` to the device in `storage`.
pub fn upload<D: Device>(b: &GpuBackend<D>, host: &[f32], storage: Storage) -> Result<GpuBuf<D>> {
    Ok(GpuBuf {
        mem: b.device().upload(&encode(host, storage))?,
        len: host.len(),
        storage,
    })
}

/// The values of `buf`, as f32.
pub fn download<D: Device>(b: &GpuBackend<D>, buf: &GpuBuf<D>) -> Result<Vec<f32>> {
    let words = b.device().download(&buf.mem, buf.storage.words(buf.len))?;
    Ok(decode(&words, buf.len, buf.storage))
}

fn alloc<D: Device>(b: &GpuBackend<D>, len: usize, storage: Storage) -> Result<GpuBuf<D>> {
    b.alloc_in(len, storage)
}

fn ptr<D: Device>(b: &GpuBackend<D>, mem: &D::Mem) -> Arg {
    Arg::Ptr(b.device().ptr(mem))
}

/// A weight matrix and its positive part, n-major, rows of `kp` values (zeros past `k`).
pub struct MmaWeights<D: Device> {
    pub n: usize,
    pub k: usize,
    pub kp: usize,
    w: D::Mem,
    w_pos: D::Mem,
}

/// How a prepared f32 weight matrix of `n` rows (outputs) by `k` values lies in memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `(n, k)`: row `i` holds the k values of output `i`.
    NMajor,
    /// `(k, n)`: the implicit-GEMM operands of `prepare_conv`, and Wᵀ of a dense layer.
    KMajor,
}

impl<D: Device> MmaWeights<D> {
    /// Packs the prepared f32 matrices `plain` and `pos` (its positive part), `n × k` in
    /// `layout`, on the device (`mma_pack.cu`).
    fn pack(
        b: &GpuBackend<D>,
        (plain, pos): (&D::Mem, &D::Mem),
        (n, k): (usize, usize),
        layout: Layout,
        storage: Storage,
    ) -> Result<Self> {
        let op = "mma_pack";
        let kp = k.div_ceil(config::MMA_KPAD as usize) * config::MMA_KPAD as usize;
        let words = storage.words(n * kp);
        let geometry = config::elementwise(words as u64)
            .ok_or_else(|| error(op, "too large for one launch"))?;
        let packed = |src: &D::Mem| -> Result<D::Mem> {
            let dst = b.device().alloc(words)?;
            let args = [
                ptr(b, src),
                ptr(b, &dst),
                int(op, n)?,
                int(op, k)?,
                int(op, kp)?,
                flag(layout == Layout::NMajor),
                flag(storage == Storage::Bf16),
            ];
            // SAFETY: `mma_pack(const float* src, unsigned* dst, int n, int k, int kp,
            // int n_major, int bf16)`; src holds n·k floats (the prepared layer), dst n·kp
            // values in `storage`, the words the grid walks.
            unsafe {
                launch(
                    b,
                    Entry {
                        kernel: op,
                        geometry,
                    },
                    &args,
                )?
            };
            Ok(dst)
        };
        Ok(MmaWeights {
            n,
            k,
            kp,
            w: packed(plain)?,
            w_pos: packed(pos)?,
        })
    }

    fn set(&self, set: WeightSet) -> &D::Mem {
        match set {
            WeightSet::Plain => &self.w,
            WeightSet::Positive => &self.w_pos,
        }
    }
}

/// A copy of `len` floats (the biases of the prepared layer the tensor-core weights come from).
fn copied<D: Device>(b: &GpuBackend<D>, src: &D::Mem, len: usize) -> Result<D::Mem> {
    let dst = b.device().alloc(len)?;
    b.device().copy(&dst, src, len)?;
    Ok(dst)
}

fn bias_args<D: Device>(
    b: &GpuBackend<D>,
    bias: &D::Mem,
    bias_pos: &D::Mem,
    mode: BiasMode,
) -> Arg {
    match mode {
        BiasMode::None => Arg::Ptr(0),
        BiasMode::Positive => ptr(b, bias_pos),
        BiasMode::Full => ptr(b, bias),
    }
}

/// A conv layer's weights for one math: the forward operand and the transposed one.
pub struct MmaConv<D: Device> {
    pub cin: usize,
    pub cout: usize,
    pub math: MmaMath,
    /// The tile: None, the table's choice; Some(true) the large one, Some(false) the small one.
    pub tile: Option<bool>,
    fwd: MmaWeights<D>,
    t: MmaWeights<D>,
    bias: D::Mem,
    bias_pos: D::Mem,
}

impl<D: Device> MmaConv<D> {
    /// From a prepared conv: B[co][tap·Cin + ci] = w[co][ci][tap] is its operand W (9·Cin, Cout)
    /// transposed, and Bᵀ[ci][tap·Cout + co] = w[co][ci][8 − tap] its Wᵀ (9·Cout, Cin).
    pub fn new(b: &GpuBackend<D>, p: &GpuConv<D>, math: MmaMath) -> Result<Self> {
        let (cin, cout) = (p.cin, p.cout);
        let storage = Storage::of(math);
        let fwd = MmaWeights::pack(
            b,
            (&p.w, &p.w_pos),
            (cout, 9 * cin),
            Layout::KMajor,
            storage,
        )?;
        let t = MmaWeights::pack(
            b,
            (&p.wt, &p.wt_pos),
            (cin, 9 * cout),
            Layout::KMajor,
            storage,
        )?;
        Ok(MmaConv {
            cin,
            cout,
            math,
            tile: None,
            fwd,
            t,
            bias: copied(b, &p.bias, cout)?,
            bias_pos: copied(b, &p.bias_pos, cout)?,
        })
    }
}

/// A dense layer's weights for one math: W (out, in) and Wᵀ (in, out), both n-major.
pub struct MmaDense<D: Device> {
    pub inputs: usize,
    pub outputs: usize,
    pub math: MmaMath,
    fwd: MmaWeights<D>,
    t: MmaWeights<D>,
    bias: D::Mem,
    bias_pos: D::Mem,
}

impl<D: Device> MmaDense<D> {
    /// From a prepared dense layer: W (out, in) as it is, and Wᵀ its transpose.
    pub fn new(b: &GpuBackend<D>, p: &GpuDense<D>, math: MmaMath) -> Result<Self> {
        let (inputs, outputs) = (p.inputs, p.outputs);
        let storage = Storage::of(math);
        let w = (&p.w, &p.w_pos);
        let fwd = MmaWeights::pack(b, w, (outputs, inputs), Layout::NMajor, storage)?;
        let t = MmaWeights::pack(b, w, (inputs, outputs), Layout::KMajor, storage)?;
        Ok(MmaDense {
            inputs,
            outputs,
            math,
            fwd,
            t,
            bias: copied(b, &p.bias, outputs)?,
            bias_pos: copied(b, &p.bias_pos, outputs)?,
        })
    }
}

/// What a forward output is: a hidden layer's (ReLU) or the logits (none; q = 1 / stab(z⁺)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Hidden,
    Logits,
}

/// The z⁺ side of a fused forward: β and the stabiliser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZPlus {
    pub bias: BiasMode,
    pub stab: Stabilizer,
}

fn check_input<D: Device>(op: &str, math: MmaMath, x: &GpuBuf<D>, len: usize) -> Result<()> {
    if x.len != len {
        return Err(error(
            op,
            format!("input has {} values, expected {len}", x.len),
        ));
    }
    if !math.bf16() && x.storage != Storage::F32 {
        return Err(error(op, "tf32 kernels read f32 inputs"));
    }
    Ok(())
}

fn check_output(op: &str, math: MmaMath, out: Storage) -> Result<()> {
    if !math.bf16() && out != Storage::F32 {
        return Err(error(op, "tf32 kernels write f32 outputs"));
    }
    Ok(())
}

/// Launches `entry` with `args`, opting in to its shared memory past 48 KB.
///
/// # Safety
/// As [`Device::launch`].
unsafe fn launch<D: Device>(b: &GpuBackend<D>, entry: Entry, args: &[Arg]) -> Result<()> {
    let g = entry.geometry;
    if g.grid.0 == 0 || g.grid.1 == 0 || g.grid.2 == 0 {
        return Ok(());
    }
    if g.shared_bytes > config::DEFAULT_SHARED_LIMIT {
        b.device().set_shared_limit(entry.kernel, g.shared_bytes)?;
    }
    // SAFETY: forwarded from the caller.
    unsafe { b.device().launch(entry.kernel, g, args) }
}

fn conv_entry<D: Device>(
    c: &MmaConv<D>,
    op: MmaOp,
    name: &str,
    m: usize,
    n: usize,
) -> Result<Entry> {
    let (m, n) = (m as u64, n as u64);
    match c.tile {
        None => config::conv_entry(op, c.math, m, n),
        Some(large) => config::conv_entry_tile(op, c.math, m, n, large),
    }
    .ok_or_else(|| error(name, "too large for one launch"))
}

/// y = relu(conv3x3(x, W) + b) (no ReLU for `Output::Logits`) over `rows` maps of h×w.
#[allow(clippy::too_many_arguments)]
pub fn conv_fwd<D: Device>(
    b: &GpuBackend<D>,
    c: &MmaConv<D>,
    rows: usize,
    (h, w): (usize, usize),
    x: &GpuBuf<D>,
    output: Output,
    out: Storage,
) -> Result<GpuBuf<D>> {
    let op = "conv_mma_fwd";
    let m = rows * h * w;
    check_input(op, c.math, x, m * c.cin)?;
    check_output(op, c.math, out)?;
    let y = alloc(b, m * c.cout, out)?;
    let entry = conv_entry(c, MmaOp::Fwd, op, m, c.cout)?;
    let args = [
        ptr(b, &x.mem),
        ptr(b, &c.fwd.w),
        ptr(b, &c.bias),
        ptr(b, &y.mem),
        int(op, rows)?,
        int(op, h)?,
        int(op, w)?,
        int(op, c.cin)?,
        int(op, c.cout)?,
        int(op, c.fwd.kp)?,
        flag(output == Output::Hidden),
        flag(x.storage == Storage::F32),
        flag(out == Storage::F32),
    ];
    // SAFETY: conv_mma_fwd_*(x, w, bias, y, rows, h, w, cin, cout, kp, relu, a_f32, out_f32);
    // x holds rows·h·w·cin values, w cout rows of kp, y rows·h·w·cout, in their storages.
    unsafe { launch(b, entry, &args)? };
    Ok(y)
}

/// The fused forward: a′ = relu(z) (z for the logits) and q = a′ / stab(z⁺) (1 / stab(z⁺) for the
/// logits), z = conv(x, W) + b, z⁺ = conv(x, W⁺) + β. Returns (a′, q).
#[allow(clippy::too_many_arguments)]
pub fn conv_dual<D: Device>(
    b: &GpuBackend<D>,
    c: &MmaConv<D>,
    rows: usize,
    (h, w): (usize, usize),
    x: &GpuBuf<D>,
    output: Output,
    zplus: ZPlus,
    out: Storage,
) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
    let op = "conv_mma_dual";
    let m = rows * h * w;
    check_input(op, c.math, x, m * c.cin)?;
    check_output(op, c.math, out)?;
    let (act, q) = (alloc(b, m * c.cout, out)?, alloc(b, m * c.cout, out)?);
    let entry = conv_entry(c, MmaOp::Dual, op, m, c.cout)?;
    let [kind, value] = stab_args(zplus.stab);
    let args = [
        ptr(b, &x.mem),
        ptr(b, &c.fwd.w),
        ptr(b, &c.fwd.w_pos),
        ptr(b, &c.bias),
        bias_args(b, &c.bias, &c.bias_pos, zplus.bias),
        ptr(b, &act.mem),
        ptr(b, &q.mem),
        int(op, rows)?,
        int(op, h)?,
        int(op, w)?,
        int(op, c.cin)?,
        int(op, c.cout)?,
        int(op, c.fwd.kp)?,
        flag(output == Output::Hidden),
        flag(output == Output::Logits),
        kind,
        value,
        flag(x.storage == Storage::F32),
        flag(out == Storage::F32),
    ];
    // SAFETY: conv_mma_dual_*(x, w, w_pos, bias, beta, act, q, rows, h, w, cin, cout, kp, relu,
    // q_mode, stab_kind, stab_value, a_f32, out_f32); sizes as for conv_fwd, β null or cout.
    unsafe { launch(b, entry, &args)? };
    Ok((act, q))
}

/// out = conv3x3ᵀ(g, W_set) over `rows` = N·K maps of Cout channels, times `mul` (N maps of
/// Cin channels, in the math's storage) of each row's image when given.
#[allow(clippy::too_many_arguments)]
pub fn conv_t<D: Device>(
    b: &GpuBackend<D>,
    c: &MmaConv<D>,
    set: WeightSet,
    (rows, heads): (usize, usize),
    (h, w): (usize, usize),
    g: &GpuBuf<D>,
    mul: Option<&GpuBuf<D>>,
    out: Storage,
) -> Result<GpuBuf<D>> {
    let op = "conv_mma_t";
    let m = rows * h * w;
    check_input(op, c.math, g, m * c.cout)?;
    check_output(op, c.math, out)?;
    check_mul(op, c.math, mul, rows, heads, h * w * c.cin)?;
    let o = alloc(b, m * c.cin, out)?;
    let entry = conv_entry(c, MmaOp::T, op, m, c.cin)?;
    let args = [
        ptr(b, &g.mem),
        ptr(b, c.t.set(set)),
        mul.map_or(Arg::Ptr(0), |v| ptr(b, &v.mem)),
        ptr(b, &o.mem),
        int(op, rows)?,
        int(op, heads)?,
        int(op, h)?,
        int(op, w)?,
        int(op, c.cout)?,
        int(op, c.cin)?,
        int(op, c.t.kp)?,
        flag(g.storage == Storage::F32),
        flag(out == Storage::F32),
    ];
    // SAFETY: conv_mma_t_*(g, wt, mul, out, rows, heads, h, w, cout, cin, kp, a_f32, out_f32);
    // g holds rows·h·w·cout values, wt cin rows of kp, mul null or rows/heads·h·w·cin, out
    // rows·h·w·cin.
    unsafe { launch(b, entry, &args)? };
    Ok(o)
}

fn check_mul<D: Device>(
    op: &str,
    math: MmaMath,
    mul: Option<&GpuBuf<D>>,
    rows: usize,
    heads: usize,
    map: usize,
) -> Result<()> {
    if heads == 0 || !rows.is_multiple_of(heads) {
        return Err(error(
            op,
            format!("{rows} rows are not a whole number of {heads} heads"),
        ));
    }
    let Some(mul) = mul else { return Ok(()) };
    if mul.len != rows / heads * map {
        return Err(error(
            op,
            format!(
                "multiplier has {} values, expected {}",
                mul.len,
                rows / heads * map
            ),
        ));
    }
    if mul.storage != Storage::of(math) {
        return Err(error(
            op,
            "the multiplier must be stored as the kernel's activations",
        ));
    }
    Ok(())
}

/// The dense launch and, when k is split, the partial sums and the reduction that finishes it.
struct DenseLaunch<D: Device> {
    entry: Entry,
    k_split: Arg,
    partial: Option<D::Mem>,
    slices: u32,
}

fn dense_launch<D: Device>(
    b: &GpuBackend<D>,
    op: MmaOp,
    math: MmaMath,
    name: &str,
    (rows, n, k): (usize, usize, usize),
    slices: Option<u32>,
) -> Result<DenseLaunch<D>> {
    let d = config::dense_entry(op, math, rows as u64, n as u64, k as u64, slices)
        .ok_or_else(|| error(name, "too large for one launch"))?;
    let partial = if d.slices > 1 {
        Some(
            b.device()
                .alloc(d.slices as usize * op.operands() as usize * rows * n)?,
        )
    } else {
        None
    };
    Ok(DenseLaunch {
        entry: d.entry,
        k_split: Arg::I32(d.k_split as i32),
        partial,
        slices: d.slices,
    })
}

impl<D: Device> DenseLaunch<D> {
    fn partial_arg(&self, b: &GpuBackend<D>) -> Arg {
        self.partial.as_ref().map_or(Arg::Ptr(0), |p| ptr(b, p))
    }

    /// The reduction of the slices (after the main kernel), when there are several.
    fn reduce(&self, b: &GpuBackend<D>, op: MmaOp, elements: usize, tail: &[Arg]) -> Result<()> {
        let Some(partial) = &self.partial else {
            return Ok(());
        };
        let kernel = config::DENSE_MMA_REDUCE[op as usize];
        let geometry = config::elementwise(elements as u64)
            .ok_or_else(|| error(kernel, "too large for one launch"))?;
        let mut args = vec![ptr(b, partial), Arg::I32(self.slices as i32)];
        args.extend_from_slice(tail);
        // SAFETY: dense_mma_reduce_*(partial, slices, …) with the epilogue's arguments of the
        // main kernel; partial holds slices·NB·elements floats.
        unsafe { launch(b, Entry { kernel, geometry }, &args) }
    }
}

/// y = W x + b (ReLU for hidden layers) over `rows` rows; `slices` splits k (None: by the table).
pub fn dense_fwd<D: Device>(
    b: &GpuBackend<D>,
    d: &MmaDense<D>,
    rows: usize,
    x: &GpuBuf<D>,
    output: Output,
    out: Storage,
    slices: Option<u32>,
) -> Result<GpuBuf<D>> {
    let op = "dense_mma_fwd";
    check_input(op, d.math, x, rows * d.inputs)?;
    check_output(op, d.math, out)?;
    let y = alloc(b, rows * d.outputs, out)?;
    let l = dense_launch(
        b,
        MmaOp::Fwd,
        d.math,
        op,
        (rows, d.outputs, d.inputs),
        slices,
    )?;
    let relu = flag(output == Output::Hidden);
    let bf16 = flag(out == Storage::Bf16);
    let args = [
        ptr(b, &x.mem),
        ptr(b, &d.fwd.w),
        ptr(b, &d.bias),
        ptr(b, &y.mem),
        int(op, rows)?,
        int(op, d.inputs)?,
        int(op, d.outputs)?,
        int(op, d.fwd.kp)?,
        relu,
        flag(x.storage == Storage::F32),
        flag(out == Storage::F32),
        l.k_split,
        l.partial_arg(b),
    ];
    // SAFETY: dense_mma_fwd_*(x, w, bias, y, rows, in, out, kp, relu, a_f32, out_f32, k_split,
    // partial); x rows·in, w out rows of kp, y rows·out, partial slices·rows·out or null.
    unsafe { launch(b, l.entry, &args)? };
    let tail = [
        ptr(b, &d.bias),
        ptr(b, &y.mem),
        int(op, rows)?,
        int(op, d.outputs)?,
        relu,
        bf16,
    ];
    l.reduce(b, MmaOp::Fwd, rows * d.outputs, &tail)?;
    Ok(y)
}

/// The fused dense forward: (a′, q) as [`conv_dual`].
#[allow(clippy::too_many_arguments)]
pub fn dense_dual<D: Device>(
    b: &GpuBackend<D>,
    d: &MmaDense<D>,
    rows: usize,
    x: &GpuBuf<D>,
    output: Output,
    zplus: ZPlus,
    out: Storage,
    slices: Option<u32>,
) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
    let op = "dense_mma_dual";
    check_input(op, d.math, x, rows * d.inputs)?;
    check_output(op, d.math, out)?;
    let (act, q) = (
        alloc(b, rows * d.outputs, out)?,
        alloc(b, rows * d.outputs, out)?,
    );
    let l = dense_launch(
        b,
        MmaOp::Dual,
        d.math,
        op,
        (rows, d.outputs, d.inputs),
        slices,
    )?;
    let [kind, value] = stab_args(zplus.stab);
    let beta = bias_args(b, &d.bias, &d.bias_pos, zplus.bias);
    let (relu, q_mode) = (
        flag(output == Output::Hidden),
        flag(output == Output::Logits),
    );
    let args = [
        ptr(b, &x.mem),
        ptr(b, &d.fwd.w),
        ptr(b, &d.fwd.w_pos),
        ptr(b, &d.bias),
        beta,
        ptr(b, &act.mem),
        ptr(b, &q.mem),
        int(op, rows)?,
        int(op, d.inputs)?,
        int(op, d.outputs)?,
        int(op, d.fwd.kp)?,
        relu,
        q_mode,
        kind,
        value,
        flag(x.storage == Storage::F32),
        flag(out == Storage::F32),
        l.k_split,
        l.partial_arg(b),
    ];
    // SAFETY: dense_mma_dual_*(x, w, w_pos, bias, beta, act, q, rows, in, out, kp, relu, q_mode,
    // stab_kind, stab_value, a_f32, out_f32, k_split, partial); sizes as dense_fwd, partial
    // slices·2·rows·out or null.
    unsafe { launch(b, l.entry, &args)? };
    let tail = [
        ptr(b, &d.bias),
        beta,
        ptr(b, &act.mem),
        ptr(b, &q.mem),
        int(op, rows)?,
        int(op, d.outputs)?,
        relu,
        q_mode,
        kind,
        value,
        flag(out == Storage::Bf16),
    ];
    l.reduce(b, MmaOp::Dual, rows * d.outputs, &tail)?;
    Ok((act, q))
}

/// c = g · W_set over `rows` = N·K rows, times `mul` (N rows of `inputs`) of each row's image.
#[allow(clippy::too_many_arguments)]
pub fn dense_t<D: Device>(
    b: &GpuBackend<D>,
    d: &MmaDense<D>,
    set: WeightSet,
    (rows, heads): (usize, usize),
    g: &GpuBuf<D>,
    mul: Option<&GpuBuf<D>>,
    out: Storage,
    slices: Option<u32>,
) -> Result<GpuBuf<D>> {
    let op = "dense_mma_t";
    check_input(op, d.math, g, rows * d.outputs)?;
    check_output(op, d.math, out)?;
    check_mul(op, d.math, mul, rows, heads, d.inputs)?;
    let c = alloc(b, rows * d.inputs, out)?;
    let l = dense_launch(b, MmaOp::T, d.math, op, (rows, d.inputs, d.outputs), slices)?;
    let mul_arg = mul.map_or(Arg::Ptr(0), |v| ptr(b, &v.mem));
    let args = [
        ptr(b, &g.mem),
        ptr(b, d.t.set(set)),
        mul_arg,
        ptr(b, &c.mem),
        int(op, rows)?,
        int(op, heads)?,
        int(op, d.outputs)?,
        int(op, d.inputs)?,
        int(op, d.t.kp)?,
        flag(g.storage == Storage::F32),
        flag(out == Storage::F32),
        l.k_split,
        l.partial_arg(b),
    ];
    // SAFETY: dense_mma_t_*(g, wt, mul, c, rows, heads, out, in, kp, a_f32, out_f32, k_split,
    // partial); g rows·out, wt in rows of kp, mul null or rows/heads·in, c rows·in, partial
    // slices·rows·in or null.
    unsafe { launch(b, l.entry, &args)? };
    let tail = [
        mul_arg,
        ptr(b, &c.mem),
        int(op, rows)?,
        int(op, heads)?,
        int(op, d.inputs)?,
        flag(d.math.bf16()),
        flag(out == Storage::Bf16),
    ];
    l.reduce(b, MmaOp::T, rows * d.inputs, &tail)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_storage_round_trips_and_rounds_to_even() {
        let v = [
            1.0,
            -2.5,
            1.0 + 2f32.powi(-8),
            3.0,
            1.0 + 3.0 * 2f32.powi(-8),
        ];
        let back = decode(&encode(&v, Storage::Bf16), v.len(), Storage::Bf16);
        assert_eq!(back, [1.0, -2.5, 1.0, 3.0, 1.0 + 2f32.powi(-6)]);
        assert_eq!(Storage::Bf16.words(5), 3);
        assert_eq!(decode(&encode(&v, Storage::F32), 5, Storage::F32), v);
    }
}
