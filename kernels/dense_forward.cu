// dense_forward.cu — y = W x + b, optionally ReLU: the forward pass of a dense layer, as a
// deterministic split-K pair. CPU twin: src/backend/cpu/dense.rs `dense_forward`.
//
// - dense_forward_partial: the partial sums of each input slice (dense_rows.cuh);
// - dense_forward_reduce: one thread per (row, output), the slices added in order, bias, ReLU.
#include "dense_rows.cuh"

extern "C" __global__ void __launch_bounds__(DENSE_WARPS * 32) dense_forward_partial(
    const float* __restrict__ x,   // (n, in)
    const float* __restrict__ w,   // (out, in)
    float* __restrict__ partial,   // (slices, n, out)
    int n, int in, int out, int k_slice)
{
    dense_partial_sums(x, w, partial, n, in, out, k_slice);
}

extern "C" __global__ void dense_forward_reduce(
    const float* __restrict__ partial,  // (slices, n, out)
    const float* __restrict__ bias,     // (out)
    float* __restrict__ y,              // (n, out)
    int n, int out, int slices, int relu)
{
    const long long total = (long long)n * out;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const float v = dense_slices_sum(partial, total, e, slices) + bias[e % out];
        y[e] = relu ? fmaxf(v, 0.0f) : v;
    }
}
