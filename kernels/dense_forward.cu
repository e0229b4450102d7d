// dense_forward.cu — y = W x + b, optionally ReLU: the forward pass of a dense layer.
// CPU twin: src/backend/cpu/dense.rs `dense_forward`.
//
// Threads: one warp per output j (dense_rows.cuh), DENSE_WARPS outputs per block; grid
// (⌈out / DENSE_WARPS⌉, ⌈n / DENSE_ROWS⌉). Lane r writes row r's value.
#include "dense_rows.cuh"

extern "C" __global__ void __launch_bounds__(DENSE_WARPS * 32) dense_forward(
    const float* __restrict__ x,     // (n, in)
    const float* __restrict__ w,     // (out, in)
    const float* __restrict__ bias,  // (out)
    float* __restrict__ y,           // (n, out)
    int n, int in, int out, int relu)
{
    const int lane = threadIdx.x % 32;
    const int j = blockIdx.x * DENSE_WARPS + threadIdx.x / 32;
    const int r0 = blockIdx.y * DENSE_ROWS;
    float acc[DENSE_ROWS];
    dense_rows(x, w, n, in, j, j < out, r0, acc);
    if (j >= out) return;
#pragma unroll
    for (int r = 0; r < DENSE_ROWS; ++r) {
        if (lane == r && r0 + r < n) {
            const float v = acc[r] + bias[j];
            y[(long long)(r0 + r) * out + j] = relu ? fmaxf(v, 0.0f) : v;
        }
    }
}
