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

// What the kernels assume of the tiles, checked when this file compiles (in build.rs too).
const _: () = {
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
    ("DENSE_WARPS", DENSE_WARPS),
    ("DENSE_ROWS", DENSE_ROWS),
    ("DENSE_KCHUNK", DENSE_KCHUNK),
    ("DT_THREADS", DT_THREADS),
    ("DT_ROWS", DT_ROWS),
    ("DT_SLICE", DT_SLICE),
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

/// One thread per element, `elements` of them, in a one-dimensional grid.
pub fn elementwise(elements: u64) -> Option<Geometry> {
    let gx = blocks(elements, ELEMENTWISE_THREADS).max(1);
    (gx <= MAX_GRID_X).then_some(Geometry {
        grid: (gx as u32, 1, 1),
        block: (ELEMENTWISE_THREADS, 1, 1),
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
        assert!(dense_partial(65536 * DENSE_WARPS as u64, 1, 1).is_none());
        assert!(dense_partial(1, 1, 65536).is_none());
    }

    #[test]
    fn defines_name_every_tile_constant_once() {
        let mut names: Vec<_> = DEFINES.iter().map(|d| d.0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DEFINES.len());
    }
}
