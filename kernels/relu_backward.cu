// relu_backward.cu — the ReLU backward of a gradient pass, in place (docs/evaluation.md):
//   mask 0 (gradient): g = 0 where the forward output y ≤ 0;
//   mask 1 (guided backprop): g = 0 where y ≤ 0 or g ≤ 0.
// CPU twin: CpuBackend::relu_backward in src/backend/cpu/mod.rs.
//
// Threads: one per element of the N·K maps, grid-stride; map row r reads y of image r / K.
#include "common.cuh"

extern "C" __global__ void relu_backward(
    float* __restrict__ g,        // (N·K, map)
    const float* __restrict__ y,  // (N, map)
    long long rows, long long map, int heads, int guided)
{
    const long long total = rows * map;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long row = e / map;
        const float yv = y[(row / heads) * map + (e - row * map)];
        const float gv = g[e];
        const bool pass = yv > 0.0f && (guided == 0 || gv > 0.0f);
        if (!pass) g[e] = 0.0f;
    }
}
