// scale_heads.cu — r ⊙ m per image, row r times map r / K of m: in the fused z⁺ pass
// (docs/method.md §Rules) the top quotient head ⊙ q_top, and a ⊙ c at a layer (CPU twin:
// src/backend/cpu/pool.rs `scale_heads`). The pass's other multiplication, by q below a pool,
// is maxpool_route.cu's `maxpool_route_scaled`.
//
// Threads: one per output element, grid-stride.
#include "common.cuh"

extern "C" __global__ void scale_heads(
    const float* __restrict__ r,  // (N·K, map)
    const float* __restrict__ m,  // (N, map)
    float* __restrict__ out,      // (N·K, map)
    long long rows, long long map, int heads)
{
    const long long total = rows * map;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long row = e / map;
        const long long i = e - row * map;
        out[e] = r[e] * m[(row / heads) * map + i];
    }
}
