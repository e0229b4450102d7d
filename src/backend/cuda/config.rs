//! Tile sizes and launch geometry of the CUDA kernels: the one place they are written.
//!
//! `build.rs` includes this file as a module and hands every entry of [`DEFINES`] to NVRTC as a
//! `-D` define; the launchers in this crate use the same constants and the geometry functions
//! below. So a kernel and its launch cannot disagree. This file must stay plain Rust with no
//! `crate::` paths (build.rs compiles it on its own).

/// The PTX target. compute_80 PTX is JIT-compiled by the driver for the card it runs on: A100
/// (sm_80), H100 and H200 (sm_90). NVRTC 13.0 writes PTX ISA 9.0, which the CUDA 13.0 driver of the
/// H100/H200 machines loads; a newer NVRTC writes a newer ISA that an older driver refuses.
pub const PTX_ARCH: &str = "compute_80";

/// The machine code `ptxas` checks in CI (`.ci/ptxas_check.sh`): the H100/H200.
pub const CHECK_SM: &str = "sm_90";

/// Implicit-GEMM convolution (`conv_tile.cuh`): a block computes a `CONV_BM × CONV_BN` tile of
/// (output positions × output channels), stepping the reduction (taps × input channels) by
/// `CONV_BK`. Each of the `CONV_THREADS` threads owns a `CONV_TM × CONV_TN` micro-tile.
pub const CONV_BM: u32 = 64;
pub const CONV_BN: u32 = 64;
pub const CONV_BK: u32 = 16;
pub const CONV_TM: u32 = 4;
pub const CONV_TN: u32 = 4;
pub const CONV_THREADS: u32 = (CONV_BM / CONV_TM) * (CONV_BN / CONV_TN);

/// Threads per block of the direct `_v1` kernels and of the element-wise kernels.
pub const ELEMENTWISE_THREADS: u32 = 256;

/// CUDA graphs a backend holds at most (each holds every buffer of its pass); passes of other
/// shapes run without one.
pub const MAX_GRAPHS: usize = 8;

/// Input slots of the copy streams: one batch uploads while the one before it computes.
pub const PASS_SLOTS: usize = 2;

/// Heads: one block per head row, a power of two of threads (its reductions halve).
pub const HEADS_THREADS: u32 = 256;

/// Dense forward and quotient: one warp per output, `DENSE_WARPS` outputs per block, the inputs
/// of `DENSE_ROWS` rows staged through shared memory `DENSE_KCHUNK` columns at a time; the
/// inputs split into slices (deterministic split-K) until the partial kernel has about
/// `DENSE_TARGET_BLOCKS` blocks, a few waves on a large GPU.
pub const DENSE_WARPS: u32 = 8;
pub const DENSE_ROWS: u32 = 8;
pub const DENSE_KCHUNK: u32 = 256;
pub const DENSE_TARGET_BLOCKS: u64 = 1024;

/// Dense transpose: one thread per `DT_COLS` input columns (one float4), `DT_THREADS` threads
/// per block, `DT_ROWS` rows at a time; the outputs are split into slices of `DT_SLICE` whose partial sums a second kernel
/// adds in a fixed order (no atomics, so results are deterministic).
pub const DT_THREADS: u32 = 256;
pub const DT_ROWS: u32 = 8;
pub const DT_SLICE: u32 = 256;
pub const DT_COLS: u32 = 4;

/// The transposed conv of narrow layers (`conv_transpose_narrow.cu`), at most `NARROW_MAX_CIN`
/// input channels: the z^B first layer (6). A block of `NARROW_THREADS` threads, one per output
/// pixel of a `NARROW_TILE_H × NARROW_TILE_W` tile of one map, steps through the output channels
/// `NARROW_SLICE` at a time.
pub const NARROW_MAX_CIN: u32 = 8;
pub const NARROW_TILE_H: u32 = 8;
pub const NARROW_TILE_W: u32 = 32;
pub const NARROW_SLICE: u32 = 16;
pub const NARROW_THREADS: u32 = NARROW_TILE_H * NARROW_TILE_W;

// What the kernels assume of the tiles, checked when this file compiles (in build.rs too).
const _: () = {
    assert!(
        NARROW_MAX_CIN.is_multiple_of(4),
        "weights are read as float4"
    );
    assert!(NARROW_THREADS.is_multiple_of(32), "whole warps");
    assert!(
        NARROW_THREADS.is_multiple_of(NARROW_SLICE),
        "each thread stages one channel of the slice"
    );
    assert!(CONV_BM.is_multiple_of(CONV_TM) && CONV_BN.is_multiple_of(CONV_TN));
    assert!(CONV_THREADS.is_multiple_of(32), "whole warps");
    // Each thread loads an equal share of the A (BM×BK) and B (BK×BN) tiles.
    assert!((CONV_BM * CONV_BK).is_multiple_of(CONV_THREADS));
    assert!((CONV_BK * CONV_BN).is_multiple_of(CONV_THREADS));
    assert!(CONV_THREADS.is_multiple_of(CONV_BK) && CONV_THREADS.is_multiple_of(CONV_BN));
    assert!(
        CONV_TM == 4 && CONV_TN == 4,
        "conv_tile.cuh reads A and B as float4"
    );
    assert!(DENSE_KCHUNK.is_multiple_of(32));
    assert!(
        DENSE_KCHUNK.is_multiple_of(4),
        "slices start 16-byte aligned for float4 loads"
    );
    assert!(DENSE_ROWS <= 32, "lane r writes row r");
    assert!(HEADS_THREADS.is_power_of_two());
};

/// Every define passed to NVRTC, `-DNAME=value`.
pub const DEFINES: &[(&str, u32)] = &[
    ("CONV_BM", CONV_BM),
    ("CONV_BN", CONV_BN),
    ("CONV_BK", CONV_BK),
    ("CONV_TM", CONV_TM),
    ("CONV_TN", CONV_TN),
    ("CONV_THREADS", CONV_THREADS),
    ("ELEMENTWISE_THREADS", ELEMENTWISE_THREADS),
    ("HEADS_THREADS", HEADS_THREADS),
    ("DENSE_WARPS", DENSE_WARPS),
    ("DENSE_ROWS", DENSE_ROWS),
    ("DENSE_KCHUNK", DENSE_KCHUNK),
    ("DT_THREADS", DT_THREADS),
    ("DT_ROWS", DT_ROWS),
    ("DT_SLICE", DT_SLICE),
    ("NARROW_MAX_CIN", NARROW_MAX_CIN),
    ("NARROW_TILE_H", NARROW_TILE_H),
    ("NARROW_TILE_W", NARROW_TILE_W),
    ("NARROW_SLICE", NARROW_SLICE),
    ("NARROW_THREADS", NARROW_THREADS),
    ("MMA_BKW", MMA_BKW),
    ("MMA_KPAD", MMA_KPAD),
    ("MMA_STAGES", MMA_STAGES),
    ("MMA_L_BM", MMA_L.bm),
    ("MMA_L_BN", MMA_L.bn),
    ("MMA_L_WM", MMA_L.wm),
    ("MMA_L_WN", MMA_L.wn),
    ("MMA_LD_BM", MMA_LD.bm),
    ("MMA_LD_BN", MMA_LD.bn),
    ("MMA_LD_WM", MMA_LD.wm),
    ("MMA_LD_WN", MMA_LD.wn),
    ("MMA_S_BM", MMA_S.bm),
    ("MMA_S_BN", MMA_S.bn),
    ("MMA_S_WM", MMA_S.wm),
    ("MMA_S_WN", MMA_S.wn),
];

/// A kernel launch: grid and block dimensions, dynamic shared memory in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

/// Largest grid.x the driver accepts; grid.y and grid.z stop at 65535.
pub const MAX_GRID_X: u64 = (1 << 31) - 1;
pub const MAX_GRID_YZ: u64 = 65535;

fn blocks(n: u64, per_block: u32) -> u64 {
    n.div_ceil(per_block as u64)
}

/// Implicit-GEMM conv over `m` output positions and `n` output channels: one block per tile.
pub fn conv_tiled(m: u64, n: u64) -> Option<Geometry> {
    let (gx, gy) = (blocks(m, CONV_BM), blocks(n, CONV_BN));
    (gx <= MAX_GRID_X && gy <= MAX_GRID_YZ).then_some(Geometry {
        grid: (gx as u32, gy as u32, 1),
        block: (CONV_THREADS, 1, 1),
        shared_bytes: 0,
    })
}

/// The narrow transposed conv over `rows` maps of `h × w`: one block per tile of a map, the tiles
/// of all maps in one dimension.
pub fn conv_transpose_narrow(rows: u64, h: u64, w: u64) -> Option<Geometry> {
    let gx = rows * blocks(h, NARROW_TILE_H) * blocks(w, NARROW_TILE_W);
    (gx <= MAX_GRID_X).then_some(Geometry {
        grid: (gx as u32, 1, 1),
        block: (NARROW_THREADS, 1, 1),
        shared_bytes: 0,
    })
}

/// One thread per element, `elements` of them, in a one-dimensional grid.
pub fn elementwise(elements: u64) -> Option<Geometry> {
    let gx = blocks(elements, ELEMENTWISE_THREADS).max(1);
    (gx <= MAX_GRID_X).then_some(Geometry {
        grid: (gx as u32, 1, 1),
        block: (ELEMENTWISE_THREADS, 1, 1),
        shared_bytes: 0,
    })
}

/// One block of `HEADS_THREADS` per head row.
pub fn heads(rows: u64) -> Option<Geometry> {
    (1..=MAX_GRID_X).contains(&rows).then_some(Geometry {
        grid: (rows as u32, 1, 1),
        block: (HEADS_THREADS, 1, 1),
        shared_bytes: 0,
    })
}

/// The split-K of a dense forward/quotient over `inputs` columns: (slices, columns per slice),
/// every slice a whole number of `DENSE_KCHUNK` stages and none empty.
pub fn dense_split(inputs: u64, outputs: u64, rows: u64) -> (u64, u64) {
    let tiles = blocks(outputs, DENSE_WARPS).max(1) * blocks(rows, DENSE_ROWS).max(1);
    let chunks = blocks(inputs, DENSE_KCHUNK).max(1);
    let wanted = DENSE_TARGET_BLOCKS.div_ceil(tiles).clamp(1, chunks);
    let k_slice = chunks.div_ceil(wanted) * DENSE_KCHUNK as u64;
    (inputs.div_ceil(k_slice).max(1), k_slice)
}

/// The partial kernel of a dense forward/quotient: (row chunks, output groups, slices).
pub fn dense_partial(outputs: u64, rows: u64, slices: u64) -> Option<Geometry> {
    let (gx, gy) = (blocks(rows, DENSE_ROWS), blocks(outputs, DENSE_WARPS));
    (gx <= MAX_GRID_X && gy <= MAX_GRID_YZ && slices <= MAX_GRID_YZ).then_some(Geometry {
        grid: (gx as u32, gy as u32, slices as u32),
        block: (DENSE_WARPS * 32, 1, 1),
        shared_bytes: 0,
    })
}

/// Number of output slices of a dense transpose over `outputs` outputs.
pub fn dense_transpose_slices(outputs: u64) -> u64 {
    blocks(outputs, DT_SLICE).max(1)
}

/// First kernel of the dense transpose: (input columns, output slices, row chunks).
pub fn dense_transpose_partial(inputs: u64, outputs: u64, rows: u64) -> Option<Geometry> {
    let gx = blocks(inputs, DT_THREADS * DT_COLS);
    let gy = dense_transpose_slices(outputs);
    let gz = blocks(rows, DT_ROWS);
    (gx <= MAX_GRID_X && gy <= MAX_GRID_YZ && gz <= MAX_GRID_YZ).then_some(Geometry {
        grid: (gx as u32, gy as u32, gz as u32),
        block: (DT_THREADS, 1, 1),
        shared_bytes: 0,
    })
}

// ---- Tensor-core kernels (kernels/conv_mma.cu, dense_mma.cu, mma_gemm.cuh) ----

/// Words of k per pipeline stage (16 tf32 or 32 bf16 values); rows of prepared weights are
/// padded with zeros to a multiple of `MMA_KPAD` values, so every stage of B is whole.
pub const MMA_BKW: u32 = 16;
pub const MMA_KPAD: u32 = 64;
/// cp.async stages in flight.
pub const MMA_STAGES: u32 = 3;
/// Below this many blocks a large-tile grid would leave SMs idle (two blocks on each of an
/// H100/H200's 132 SMs): the small tile is taken, and dense layers split k until they reach it.
pub const MMA_TARGET_BLOCKS: u64 = 264;
/// Shared memory a block may use without opting in through the function attribute.
pub const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;

/// The arithmetic of a tensor-core kernel (docs/gpu.md §Tensor cores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmaMath {
    /// m16n8k8 on operands rounded to tf32.
    Tf32,
    /// m16n8k16 on bf16 operands stored as bf16.
    Bf16,
    /// Three tf32 products per step (big·big + big·small + small·big): f32 accuracy.
    Tf32x3,
}

impl MmaMath {
    pub const ALL: [MmaMath; 3] = [MmaMath::Tf32, MmaMath::Bf16, MmaMath::Tf32x3];

    fn index(self) -> usize {
        self as usize
    }

    /// Values of k per pipeline stage.
    pub fn stage_k(self) -> u32 {
        match self {
            MmaMath::Bf16 => 2 * MMA_BKW,
            _ => MMA_BKW,
        }
    }

    /// Whether activations and weights are stored as bf16.
    pub fn bf16(self) -> bool {
        self == MmaMath::Bf16
    }

    /// The suffix of its entry points: `tf32`, `bf16`, `tf32x3`.
    pub const fn name(self) -> &'static str {
        match self {
            MmaMath::Tf32 => "tf32",
            MmaMath::Bf16 => "bf16",
            MmaMath::Tf32x3 => "tf32x3",
        }
    }
}

/// The three ops of a tensor-core layer: forward, the fused z / z⁺ forward, the transposed pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmaOp {
    Fwd,
    Dual,
    T,
}

impl MmaOp {
    fn index(self) -> usize {
        self as usize
    }

    /// The op in its entry points: `fwd`, `dual`, `t`.
    pub const fn name(self) -> &'static str {
        match self {
            MmaOp::Fwd => "fwd",
            MmaOp::Dual => "dual",
            MmaOp::T => "t",
        }
    }

    /// Weight matrices the main loop reads.
    pub fn operands(self) -> u32 {
        if self == MmaOp::Dual { 2 } else { 1 }
    }
}

/// A block tile: `bm × bn` outputs, warps of `wm × wn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmaTile {
    pub bm: u32,
    pub bn: u32,
    pub wm: u32,
    pub wn: u32,
}

impl MmaTile {
    pub const fn threads(self) -> u32 {
        32 * (self.bm / self.wm) * (self.bn / self.wn)
    }

    /// Dynamic shared memory of `operands` weight matrices: STAGES × (A + B) tiles of padded rows.
    pub const fn shared_bytes(self, operands: u32) -> u32 {
        MMA_STAGES * (self.bm + operands * self.bn) * (MMA_BKW + 4) * 4
    }
}

/// The large conv tile (fwd, t), its dual twin (two accumulators: narrower) and the small tile
/// of the 14×14 maps and the dense layers.
pub const MMA_L: MmaTile = MmaTile {
    bm: 128,
    bn: 128,
    wm: 64,
    wn: 32,
};
pub const MMA_LD: MmaTile = MmaTile {
    bm: 128,
    bn: 64,
    wm: 32,
    wn: 32,
};
pub const MMA_S: MmaTile = MmaTile {
    bm: 64,
    bn: 64,
    wm: 32,
    wn: 32,
};

/// A kernel and its launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kernel: &'static str,
    pub geometry: Geometry,
}

/// conv_mma.cu's entry points, [op][math][large, small].
const CONV_MMA: [[[&str; 2]; 3]; 3] = [
    [
        ["conv_mma_fwd_tf32_l", "conv_mma_fwd_tf32_s"],
        ["conv_mma_fwd_bf16_l", "conv_mma_fwd_bf16_s"],
        ["conv_mma_fwd_tf32x3_l", "conv_mma_fwd_tf32x3_s"],
    ],
    [
        ["conv_mma_dual_tf32_l", "conv_mma_dual_tf32_s"],
        ["conv_mma_dual_bf16_l", "conv_mma_dual_bf16_s"],
        ["conv_mma_dual_tf32x3_l", "conv_mma_dual_tf32x3_s"],
    ],
    [
        ["conv_mma_t_tf32_l", "conv_mma_t_tf32_s"],
        ["conv_mma_t_bf16_l", "conv_mma_t_bf16_s"],
        ["conv_mma_t_tf32x3_l", "conv_mma_t_tf32x3_s"],
    ],
];

/// dense_mma.cu's entry points, [op][math], and the split-k reductions, [op].
const DENSE_MMA: [[&str; 3]; 3] = [
    [
        "dense_mma_fwd_tf32",
        "dense_mma_fwd_bf16",
        "dense_mma_fwd_tf32x3",
    ],
    [
        "dense_mma_dual_tf32",
        "dense_mma_dual_bf16",
        "dense_mma_dual_tf32x3",
    ],
    ["dense_mma_t_tf32", "dense_mma_t_bf16", "dense_mma_t_tf32x3"],
];
pub const DENSE_MMA_REDUCE: [&str; 3] = [
    "dense_mma_reduce_fwd",
    "dense_mma_reduce_dual",
    "dense_mma_reduce_t",
];

/// Every tensor-core entry point (for the SASS check and the emulator's tests).
pub fn mma_kernels() -> Vec<&'static str> {
    let conv = CONV_MMA.iter().flatten().flatten();
    conv.chain(DENSE_MMA.iter().flatten()).copied().collect()
}

fn tile_geometry(tile: MmaTile, m: u64, n: u64, z: u64, operands: u32) -> Option<Geometry> {
    let (gx, gy) = (blocks(m, tile.bm), blocks(n, tile.bn));
    (gx <= MAX_GRID_X && gy <= MAX_GRID_YZ && z <= MAX_GRID_YZ).then_some(Geometry {
        grid: (gx as u32, gy as u32, z as u32),
        block: (tile.threads(), 1, 1),
        shared_bytes: tile.shared_bytes(operands),
    })
}

/// The per-layer tile table of the conv kernels: `m` output positions (rows·H·W), `n` output
/// channels. The large tile where its grid fills the card, the small one otherwise (conv5's
/// 14×14 maps at small batches).
pub fn conv_entry(op: MmaOp, math: MmaMath, m: u64, n: u64) -> Option<Entry> {
    let large = if op == MmaOp::Dual { MMA_LD } else { MMA_L };
    let small_grid = blocks(m, large.bm) * blocks(n, large.bn) < MMA_TARGET_BLOCKS;
    conv_entry_tile(op, math, m, n, !small_grid)
}

/// The conv entry with the large (or small) tile, whatever the table would pick.
pub fn conv_entry_tile(op: MmaOp, math: MmaMath, m: u64, n: u64, large: bool) -> Option<Entry> {
    let (tile, which) = match (large, op) {
        (true, MmaOp::Dual) => (MMA_LD, 0),
        (true, _) => (MMA_L, 0),
        (false, _) => (MMA_S, 1),
    };
    Some(Entry {
        kernel: CONV_MMA[op.index()][math.index()][which],
        geometry: tile_geometry(tile, m, n, 1, op.operands())?,
    })
}

/// A dense tensor-core launch: the entry, and the k split (`slices` slices of `k_split` values;
/// one slice needs no reduction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseEntry {
    pub entry: Entry,
    pub slices: u32,
    pub k_split: u32,
}

/// A dense layer of `rows` rows, `n` outputs and `k` inputs, its k split in `slices` (or, with
/// `None`, enough slices for about MMA_TARGET_BLOCKS blocks).
pub fn dense_entry(
    op: MmaOp,
    math: MmaMath,
    rows: u64,
    n: u64,
    k: u64,
    slices: Option<u32>,
) -> Option<DenseEntry> {
    let step = math.stage_k() as u64;
    let steps = k.div_ceil(step).max(1);
    let tiles = blocks(rows, MMA_S.bm) * blocks(n, MMA_S.bn);
    let wanted = slices.map_or(MMA_TARGET_BLOCKS.div_ceil(tiles.max(1)), |s| {
        s.max(1) as u64
    });
    let k_split = steps.div_ceil(wanted.min(steps)) * step;
    let slices = k.div_ceil(k_split).max(1);
    Some(DenseEntry {
        entry: Entry {
            kernel: DENSE_MMA[op.index()][math.index()],
            geometry: tile_geometry(MMA_S, rows, n, slices, op.operands())?,
        },
        slices: slices as u32,
        k_split: u32::try_from(k_split).ok()?,
    })
}

// What conv_mma.cu and mma_gemm.cuh assume of the tiles.
const _: () = {
    let tiles = [MMA_L, MMA_LD, MMA_S];
    let mut i = 0;
    while i < tiles.len() {
        let t = tiles[i];
        assert!(t.bm.is_multiple_of(t.wm) && t.bn.is_multiple_of(t.wn));
        assert!(
            t.wm.is_multiple_of(16) && t.wn.is_multiple_of(16),
            "ldmatrix.x4 pieces"
        );
        assert!(
            (t.bm * MMA_BKW / 4).is_multiple_of(t.threads()),
            "equal A loads"
        );
        assert!(
            (t.bn * MMA_BKW / 4).is_multiple_of(t.threads()),
            "equal B loads"
        );
        assert!(
            t.shared_bytes(2) <= 227 * 1024,
            "fits an H100's shared memory"
        );
        i += 1;
    }
    assert!(MMA_BKW.is_multiple_of(8) && MMA_KPAD.is_multiple_of(2 * MMA_BKW));
    assert!(MMA_STAGES >= 2);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(g: Geometry) -> (u64, u64, u64) {
        (
            g.grid.0 as u64 * g.block.0 as u64,
            g.grid.1 as u64 * g.block.1 as u64,
            g.grid.2 as u64 * g.block.2 as u64,
        )
    }

    #[test]
    fn grids_cover_odd_shapes() {
        for (m, n) in [
            (35, 5),
            (2 * 13 * 11, 33),
            (1, 1),
            (8 * 224 * 224, 64),
            (65, 65),
        ] {
            let g = conv_tiled(m, n).unwrap();
            assert_eq!(g.block.0, CONV_THREADS);
            let tiles = (
                g.grid.0 as u64 * CONV_BM as u64,
                g.grid.1 as u64 * CONV_BN as u64,
            );
            assert!(tiles.0 >= m && tiles.0 < m + CONV_BM as u64, "{m}");
            assert!(tiles.1 >= n && tiles.1 < n + CONV_BN as u64, "{n}");
        }
        // The z^B layer at batch 32: 28 × 7 tiles of each 224 × 224 map; ragged maps round up.
        let g = conv_transpose_narrow(32, 224, 224).unwrap();
        assert_eq!((g.grid, g.block.0), ((32 * 28 * 7, 1, 1), NARROW_THREADS));
        assert_eq!(conv_transpose_narrow(3, 9, 33).unwrap().grid.0, 3 * 2 * 2);
        for e in [1, 255, 256, 257, 7 * 5 * 3] {
            let (x, _, _) = covered(elementwise(e).unwrap());
            assert!(x >= e && x < e + ELEMENTWISE_THREADS as u64);
        }
        let g = dense_partial(13, 9, 3).unwrap();
        assert!(g.grid.1 as u64 * DENSE_WARPS as u64 >= 13);
        assert!(g.grid.0 as u64 * DENSE_ROWS as u64 >= 9);
        assert_eq!(g.grid.2, 3);
        for (inputs, outputs, rows) in [
            (25088, 4096, 32),
            (25088, 4096, 1),
            (4096, 1000, 32),
            (1037, 13, 3),
            (5, 1, 1),
            (0, 3, 2),
        ] {
            let (slices, k) = dense_split(inputs, outputs, rows);
            assert!(k.is_multiple_of(DENSE_KCHUNK as u64), "{inputs}");
            assert!(
                slices * k >= inputs && (slices - 1) * k < inputs.max(1),
                "{inputs}"
            );
        }
        assert_eq!(dense_split(25088, 4096, 32).0, 1, "2048 blocks already");
        assert!(dense_split(4096, 1000, 1).0 > 1, "few blocks: split");
        let g = dense_transpose_partial(1037, 13, 9).unwrap();
        assert!(covered(g).0 * DT_COLS as u64 >= 1037);
        assert!((covered(g).0 - DT_THREADS as u64) * (DT_COLS as u64) < 1037);
        assert_eq!(g.grid.1, 1);
        assert_eq!(g.grid.2 * DT_ROWS, 16);
        assert_eq!(dense_transpose_slices(4096), 16);
        assert_eq!(dense_transpose_slices(1), 1);
    }

    #[test]
    fn oversized_grids_are_refused() {
        assert!(conv_tiled(1, 65536 * CONV_BN as u64).is_none());
        assert!(conv_transpose_narrow(1 << 24, 224, 224).is_none());
        assert!(dense_partial(65536 * DENSE_WARPS as u64, 1, 1).is_none());
        assert!(dense_partial(1, 1, 65536).is_none());
    }

    #[test]
    fn mma_tiles_follow_the_layer() {
        // conv1 at batch 32: the large tile; conv5 (14×14, 512 channels) at batch 2: the small.
        let big = conv_entry(MmaOp::Fwd, MmaMath::Bf16, 32 * 224 * 224, 64).unwrap();
        assert_eq!(big.kernel, "conv_mma_fwd_bf16_l");
        assert_eq!(big.geometry.block.0, MMA_L.threads());
        assert!(big.geometry.shared_bytes > DEFAULT_SHARED_LIMIT);
        let small = conv_entry(MmaOp::Dual, MmaMath::Tf32x3, 2 * 14 * 14, 512).unwrap();
        assert_eq!(small.kernel, "conv_mma_dual_tf32x3_s");
        assert_eq!(small.geometry.grid, (7, 8, 1));
        assert_eq!(small.geometry.shared_bytes, 3 * (64 + 128) * 20 * 4);
        // fc1 at batch 32: 2 × 64 tiles, k split until about MMA_TARGET_BLOCKS blocks.
        let d = dense_entry(MmaOp::Fwd, MmaMath::Tf32, 32, 4096, 25088, None).unwrap();
        assert_eq!(d.entry.geometry.grid.0 * d.entry.geometry.grid.1, 64);
        assert!(d.slices >= 4 && d.k_split.is_multiple_of(MMA_BKW));
        assert!((d.slices as u64 - 1) * (d.k_split as u64) < 25088);
        assert!(d.slices as u64 * d.k_split as u64 >= 25088);
        let one = dense_entry(MmaOp::T, MmaMath::Bf16, 5, 40, 300, Some(1)).unwrap();
        assert_eq!((one.slices, one.k_split), (1, 320));
        assert_eq!(mma_kernels().len(), 27);
    }

    #[test]
    fn defines_name_every_tile_constant_once() {
        let mut names: Vec<_> = DEFINES.iter().map(|d| d.0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DEFINES.len());
    }
}
