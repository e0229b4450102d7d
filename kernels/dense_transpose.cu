// dense_transpose.cu — c = g · W (the transposed dense layer), multiplied by the activation of
// the head's image when one is given: the z⁺ redistribution R_in = a · (W⁺ᵀ s) of a dense
// layer, and, without the activation, the gradient through it. CPU twin:
// src/backend/cpu/dense.rs `dense_transpose`.
//
// Two kernels, so that a layer with few rows still fills the GPU and stays deterministic:
// - dense_transpose_partial: one thread per input column i, DT_ROWS rows at a time, over one
//   slice of DT_SLICE outputs: weight row j is read coalesced across the block's threads, the
//   slice's g values come from shared memory (a broadcast). Grid (⌈in / DT_THREADS⌉,
//   ⌈out / DT_SLICE⌉, ⌈rows / DT_ROWS⌉); writes partial (slices, rows, in).
// - dense_transpose_reduce: one thread per (row, i), adds the slices in order, multiplies by
//   the activation (null: none) of image row / K.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(DT_THREADS) dense_transpose_partial(
    const float* __restrict__ g,   // (rows, out)
    const float* __restrict__ w,   // (out, in)
    float* __restrict__ partial,   // (slices, rows, in)
    int rows, int in, int out)
{
    __shared__ float gs[DT_ROWS][DT_SLICE];
    const long long i = (long long)blockIdx.x * DT_THREADS + threadIdx.x;
    const int slice = blockIdx.y;
    const int r0 = blockIdx.z * DT_ROWS;
    const int j0 = slice * DT_SLICE;
    const int len = min(DT_SLICE, out - j0);
    for (int e = threadIdx.x; e < DT_ROWS * DT_SLICE; e += DT_THREADS) {
        const int r = e / DT_SLICE;
        const int jj = e - r * DT_SLICE;
        gs[r][jj] = (r0 + r < rows && jj < len) ? g[(long long)(r0 + r) * out + j0 + jj] : 0.0f;
    }
    __syncthreads();
    if (i >= in) return;
    float acc[DT_ROWS];
#pragma unroll
    for (int r = 0; r < DT_ROWS; ++r) acc[r] = 0.0f;
    const float* wc = w + (long long)j0 * in + i;
    for (int jj = 0; jj < len; ++jj) {
        const float wv = wc[(long long)jj * in];
#pragma unroll
        for (int r = 0; r < DT_ROWS; ++r) acc[r] = fmaf(gs[r][jj], wv, acc[r]);
    }
#pragma unroll
    for (int r = 0; r < DT_ROWS; ++r) {
        if (r0 + r < rows) partial[((long long)slice * rows + r0 + r) * in + i] = acc[r];
    }
}

extern "C" __global__ void dense_transpose_reduce(
    const float* __restrict__ partial,  // (slices, rows, in)
    const float* __restrict__ act,      // (N, in) or null
    float* __restrict__ c,              // (rows, in)
    int rows, int heads, int in, int slices)
{
    const long long total = (long long)rows * in;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < slices; ++s) v += partial[(long long)s * total + e];
        if (act != nullptr) {
            const long long row = e / in;
            v *= act[(row / heads) * in + (e - row * in)];
        }
        c[e] = v;
    }
}
