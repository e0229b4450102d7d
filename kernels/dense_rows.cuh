// dense_rows.cuh — the main loop shared by the dense forward and quotient: one warp per output
// j, the dot products of weight row j with DENSE_ROWS rows of x over one slice [k_begin, k_end)
// of the inputs (deterministic split-K: each slice writes its partial sums, a second kernel adds
// the slices in order).
//
// A batch is a handful of rows against a large weight matrix, so these layers are memory-bound:
// every weight is read once per DENSE_ROWS rows, by coalesced 16-byte warp loads where the rows
// allow it (`in` and k_begin multiples of 4: every weight row then starts 16-byte aligned),
// while the rows' inputs are staged through shared memory DENSE_KCHUNK columns at a time and
// shared by the block's DENSE_WARPS warps (one output each). The lanes of a warp stride the
// columns; a butterfly reduction leaves every sum in every lane. All threads of the block must
// call it (it synchronises); `j_ok` must be the same for the whole warp.
#pragma once
#include "common.cuh"

__device__ __forceinline__ void dense_rows(
    const float* __restrict__ x,  // (n, in)
    const float* __restrict__ w,  // (out, in)
    int n, int in, int k_begin, int k_end, int j, bool j_ok, int r0,
    float (&acc)[DENSE_ROWS])
{
    __shared__ __align__(16) float xs[DENSE_ROWS][DENSE_KCHUNK];
    const int lane = threadIdx.x % 32;
    const bool vec = in % 4 == 0 && k_begin % 4 == 0;
#pragma unroll
    for (int r = 0; r < DENSE_ROWS; ++r) acc[r] = 0.0f;
    for (int k0 = k_begin; k0 < k_end; k0 += DENSE_KCHUNK) {
        const int len = min(DENSE_KCHUNK, k_end - k0);
        for (int e = threadIdx.x; e < DENSE_ROWS * DENSE_KCHUNK; e += blockDim.x) {
            const int r = e / DENSE_KCHUNK;
            const int k = e - r * DENSE_KCHUNK;
            xs[r][k] = (r0 + r < n && k < len) ? x[(long long)(r0 + r) * in + k0 + k] : 0.0f;
        }
        __syncthreads();
        if (j_ok) {
            const float* wr = w + (long long)j * in + k0;
            // With `vec`, len is a multiple of 4 (in, k_begin and DENSE_KCHUNK are).
            const int len4 = vec ? len / 4 : 0;
            for (int q = lane; q < len4; q += 32) {
                const float4 wv = *reinterpret_cast<const float4*>(wr + 4 * q);
#pragma unroll
                for (int r = 0; r < DENSE_ROWS; ++r) {
                    const float4 xv = *reinterpret_cast<const float4*>(&xs[r][4 * q]);
                    acc[r] = fmaf(xv.x, wv.x, acc[r]);
                    acc[r] = fmaf(xv.y, wv.y, acc[r]);
                    acc[r] = fmaf(xv.z, wv.z, acc[r]);
                    acc[r] = fmaf(xv.w, wv.w, acc[r]);
                }
            }
            for (int kk = 4 * len4 + lane; kk < len; kk += 32) {
                const float wv = wr[kk];
#pragma unroll
                for (int r = 0; r < DENSE_ROWS; ++r) acc[r] = fmaf(xs[r][kk], wv, acc[r]);
            }
        }
        __syncthreads();
    }
    if (j_ok) {
#pragma unroll
        for (int r = 0; r < DENSE_ROWS; ++r) acc[r] = warp_sum(acc[r]);
    }
}

// The partial sums of one slice: grid (⌈n / DENSE_ROWS⌉, ⌈out / DENSE_WARPS⌉, slices), the row
// chunks fastest so that the blocks reading one group of weight rows run together and share
// them through L2. Lane r writes row r's sum of slice blockIdx.z.
__device__ __forceinline__ void dense_partial_sums(
    const float* __restrict__ x,   // (n, in)
    const float* __restrict__ w,   // (out, in)
    float* __restrict__ partial,   // (slices, n, out)
    int n, int in, int out, int k_slice)
{
    const int lane = threadIdx.x % 32;
    const int r0 = blockIdx.x * DENSE_ROWS;
    const int j = blockIdx.y * DENSE_WARPS + threadIdx.x / 32;
    const int k_begin = blockIdx.z * k_slice;
    const int k_end = min(in, k_begin + k_slice);
    float acc[DENSE_ROWS];
    dense_rows(x, w, n, in, k_begin, k_end, j, j < out, r0, acc);
    if (j >= out) return;
#pragma unroll
    for (int r = 0; r < DENSE_ROWS; ++r) {
        if (lane == r && r0 + r < n) {
            partial[((long long)blockIdx.z * n + r0 + r) * out + j] = acc[r];
        }
    }
}

// Element e's sum over the slices of a (slices, n, out) partial, added in slice order.
__device__ __forceinline__ float dense_slices_sum(
    const float* __restrict__ partial, long long n_out, long long e, int slices)
{
    float v = 0.0f;
    for (int s = 0; s < slices; ++s) v += partial[s * n_out + e];
    return v;
}
