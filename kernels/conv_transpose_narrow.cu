// conv_transpose_narrow.cu — conv_transpose.cu's product for layers with few input channels
// (Cin ≤ NARROW_MAX_CIN): the z^B first layer, whose transposed pass maps Cout = 64 channels back
// to the 6 of the doubled input [x − l | x − h]. An implicit-GEMM tile over Cin output columns
// would leave most of its width idle; here each thread owns one output pixel and all its Cin
// values. Same arguments, weight layout and result as conv_transpose (CPU twin:
// src/backend/cpu/conv.rs `conv_transpose`):
//   c[row][p][ci] = Σ_tap Σ_co g[row][p + tap − (1, 1)][co] · wt[(tap·Cout + co)·Cin + ci],
// times act[row / heads][p][ci] when act is given.
//
// Threads: a block of NARROW_TILE_H × NARROW_TILE_W threads covers that tile of output pixels of
// one map (a row: image·head); a one-dimensional grid walks (row, tile y, tile x). Cout is taken
// NARROW_SLICE channels at a time: the block stages the slice of g over the tile and its 1-pixel
// halo, channel-major so that neighbouring threads read neighbouring words, and the slice's
// weights (9 × NARROW_SLICE × NARROW_MAX_CIN, zero past Cout and Cin, so the inner loop is whole
// and unrolled); every thread accumulates its Cin sums in registers, in f32.
#include "common.cuh"

#define NARROW_HALO_H (NARROW_TILE_H + 2)
#define NARROW_HALO_W (NARROW_TILE_W + 2)

extern "C" __global__ void __launch_bounds__(NARROW_THREADS) conv_transpose_narrow(
    const float* __restrict__ g,    // (N·K, H, W, Cout)
    const float* __restrict__ wt,   // (9·Cout, Cin): flipped, transposed
    const float* __restrict__ act,  // (N, H, W, Cin) or null
    float* __restrict__ out,        // (N·K, H, W, Cin)
    int rows, int heads, int h, int w, int cout, int cin)
{
    __shared__ float gs[NARROW_SLICE][NARROW_HALO_H][NARROW_HALO_W];
    __shared__ __align__(16) float ws[9][NARROW_SLICE][NARROW_MAX_CIN];

    const int tiles_x = (w + NARROW_TILE_W - 1) / NARROW_TILE_W;
    const int tiles_y = (h + NARROW_TILE_H - 1) / NARROW_TILE_H;
    const long long tiles = (long long)tiles_x * tiles_y;
    const long long row = blockIdx.x / tiles;
    if (row >= rows) return;  // the whole block: before any barrier
    const int tile = (int)(blockIdx.x - row * tiles);
    const int y0 = (tile / tiles_x) * NARROW_TILE_H;
    const int x0 = (tile % tiles_x) * NARROW_TILE_W;
    const int tid = threadIdx.x;
    const int ly = tid / NARROW_TILE_W;
    const int lx = tid % NARROW_TILE_W;
    const float* g_row = g + row * h * w * cout;

    float acc[NARROW_MAX_CIN];
#pragma unroll
    for (int i = 0; i < NARROW_MAX_CIN; ++i) acc[i] = 0.0f;

    for (int c0 = 0; c0 < cout; c0 += NARROW_SLICE) {
        // The slice of g over the haloed tile: each thread loads one channel, and consecutive
        // threads read consecutive channels of a pixel. Outside the map (the padding) and past
        // Cout: zero. Two loads in flight per thread; more unrolling costs registers.
        const int sc = tid % NARROW_SLICE;
        const bool sc_ok = c0 + sc < cout;
        const float* g_slice = g_row + c0 + sc;
#pragma unroll 2
        for (int px = tid / NARROW_SLICE; px < NARROW_HALO_H * NARROW_HALO_W;
             px += NARROW_THREADS / NARROW_SLICE) {
            const int hy = px / NARROW_HALO_W;
            const int hx = px - hy * NARROW_HALO_W;
            const int yy = y0 + hy - 1;
            const int xx = x0 + hx - 1;
            const bool inside = sc_ok && yy >= 0 && yy < h && xx >= 0 && xx < w;
            gs[sc][hy][hx] = inside ? g_slice[((long long)yy * w + xx) * cout] : 0.0f;
        }
#pragma unroll 1
        for (int e = tid; e < 9 * NARROW_SLICE * NARROW_MAX_CIN; e += NARROW_THREADS) {
            const int ci = e % NARROW_MAX_CIN;
            const int c = (e / NARROW_MAX_CIN) % NARROW_SLICE;
            const int tap = e / (NARROW_MAX_CIN * NARROW_SLICE);
            const int co = c0 + c;
            ws[tap][c][ci] =
                co < cout && ci < cin ? wt[((long long)tap * cout + co) * cin + ci] : 0.0f;
        }
        __syncthreads();
#pragma unroll 2
        for (int c = 0; c < NARROW_SLICE; ++c) {
#pragma unroll
            for (int tap = 0; tap < 9; ++tap) {
                const float v = gs[c][ly + tap / 3][lx + tap % 3];
#pragma unroll
                for (int q = 0; q < NARROW_MAX_CIN / 4; ++q) {
                    const float4 wv = *reinterpret_cast<const float4*>(&ws[tap][c][4 * q]);
                    acc[4 * q + 0] = fmaf(v, wv.x, acc[4 * q + 0]);
                    acc[4 * q + 1] = fmaf(v, wv.y, acc[4 * q + 1]);
                    acc[4 * q + 2] = fmaf(v, wv.z, acc[4 * q + 2]);
                    acc[4 * q + 3] = fmaf(v, wv.w, acc[4 * q + 3]);
                }
            }
        }
        __syncthreads();
    }

    const int y = y0 + ly;
    const int x = x0 + lx;
    if (y >= h || x >= w) return;
    const long long pos = (long long)y * w + x;
    const long long hw = (long long)h * w;
    float* o = out + (row * hw + pos) * cin;
    const float* a = act != nullptr ? act + ((row / heads) * hw + pos) * cin : nullptr;
#pragma unroll
    for (int ci = 0; ci < NARROW_MAX_CIN; ++ci) {
        if (ci < cin) o[ci] = a != nullptr ? acc[ci] * a[ci] : acc[ci];
    }
}
