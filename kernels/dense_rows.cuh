// dense_rows.cuh — the main loop shared by dense_forward and dense_quotient: one warp per output
// j, the dot products of weight row j with DENSE_ROWS rows of x at once.
//
// A batch is a handful of rows against a large weight matrix, so these layers are memory-bound:
// every weight is read once per DENSE_ROWS rows, by coalesced warp loads, while the rows' inputs
// are staged through shared memory DENSE_KCHUNK columns at a time and shared by the block's
// DENSE_WARPS warps (one output each). The lanes of a warp stride the columns; a butterfly
// reduction leaves every sum in every lane. All threads of the block must call it (it
// synchronises); `j_ok` must be the same for the whole warp.
#pragma once
#include "common.cuh"

__device__ __forceinline__ void dense_rows(
    const float* __restrict__ x,  // (n, in)
    const float* __restrict__ w,  // (out, in)
    int n, int in, int j, bool j_ok, int r0, float (&acc)[DENSE_ROWS])
{
    __shared__ float xs[DENSE_ROWS][DENSE_KCHUNK];
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int r = 0; r < DENSE_ROWS; ++r) acc[r] = 0.0f;
    for (int k0 = 0; k0 < in; k0 += DENSE_KCHUNK) {
        for (int e = threadIdx.x; e < DENSE_ROWS * DENSE_KCHUNK; e += blockDim.x) {
            const int r = e / DENSE_KCHUNK;
            const int k = e - r * DENSE_KCHUNK;
            xs[r][k] = (r0 + r < n && k0 + k < in) ? x[(long long)(r0 + r) * in + k0 + k] : 0.0f;
        }
        __syncthreads();
        if (j_ok) {
            const float* wr = w + (long long)j * in + k0;
            const int k_end = min(DENSE_KCHUNK, in - k0);
            for (int kk = lane; kk < k_end; kk += 32) {
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
