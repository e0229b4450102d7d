// dense_transpose.cu — c = g · W (the transposed dense layer), multiplied by the activation of
// the head's image when one is given: the z⁺ redistribution R_in = a · (W⁺ᵀ s) of a dense
// layer, and, without the activation, the gradient through it. CPU twin:
// src/backend/cpu/dense.rs `dense_transpose`.
//
// Two kernels, so that a layer with few rows still fills the GPU and stays deterministic:
// - dense_transpose_partial: one thread per 4 input columns, DT_ROWS rows at a time, over one
//   slice of DT_SLICE outputs: weight row j is read coalesced across the block's threads, 16
//   bytes a thread where `in` is a multiple of 4, the slice's g values come from shared memory
//   (a broadcast). Grid (⌈in / (4·DT_THREADS)⌉, ⌈out / DT_SLICE⌉, ⌈rows / DT_ROWS⌉); writes
//   partial (slices, rows, in).
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
    const long long i = ((long long)blockIdx.x * DT_THREADS + threadIdx.x) * 4;
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
    // Rows of a multiple of 4 floats keep every thread's 4 columns 16-byte aligned.
    const bool vec = in % 4 == 0;
    const int cols = (int)min(4LL, (long long)in - i);
    float acc[DT_ROWS][4];
#pragma unroll
    for (int r = 0; r < DT_ROWS; ++r) {
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
    }
    const float* wc = w + (long long)j0 * in + i;
    for (int jj = 0; jj < len; ++jj) {
        const float* wr = wc + (long long)jj * in;
        float wv[4];
        if (vec) {
            const float4 t = *reinterpret_cast<const float4*>(wr);
            wv[0] = t.x;
            wv[1] = t.y;
            wv[2] = t.z;
            wv[3] = t.w;
        } else {
#pragma unroll
            for (int c = 0; c < 4; ++c) wv[c] = c < cols ? wr[c] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < DT_ROWS; ++r) {
            const float gv = gs[r][jj];
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(gv, wv[c], acc[r][c]);
        }
    }
#pragma unroll
    for (int r = 0; r < DT_ROWS; ++r) {
        if (r0 + r >= rows) continue;
        float* p = partial + ((long long)slice * rows + r0 + r) * in + i;
        if (vec) {
            *reinterpret_cast<float4*>(p) = float4{acc[r][0], acc[r][1], acc[r][2], acc[r][3]};
        } else {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                if (c < cols) p[c] = acc[r][c];
            }
        }
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
