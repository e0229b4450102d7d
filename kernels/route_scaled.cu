// route_scaled.cu — the multiplications of the fused z⁺ pass (docs/method.md §Rules):
// - maxpool_route_scaled: max-pool routing times a map of the pool's input per image,
//   s_below = q_below ⊙ route(c): the value routed to position p of row r is multiplied by
//   m[r / K][p] (CPU twin: src/backend/cpu/mod.rs `maxpool_route_scaled`);
// - scale_heads: r ⊙ m per image, row r times map r / K of m (the top quotient head ⊙ q_top,
//   and a ⊙ c at a layer; CPU twin: src/backend/cpu/pool.rs `scale_heads`).
//
// Threads: one per output element, grid-stride. maxpool_route_scaled is maxpool_route.cu's
// gather with the multiplication folded in: every element written once, no atomics.
#include "common.cuh"

extern "C" __global__ void maxpool_route_scaled(
    const float* __restrict__ c,          // (N·K, H/2, W/2, C)
    const unsigned* __restrict__ argmax,  // (N, H/2, W/2, C)
    const float* __restrict__ m,          // (N, H, W, C)
    float* __restrict__ out,              // (N·K, H, W, C)
    int rows, int heads, int h, int w, int ch_count)
{
    const int ho = h / 2, wo = w / 2;
    const long long in_map = (long long)h * w * ch_count;
    const long long out_map = (long long)ho * wo * ch_count;
    const long long total = (long long)rows * in_map;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long row = e / in_map;
        const long long local = e - row * in_map;
        const int ch = (int)(local % ch_count);
        const long long px = local / ch_count;
        const int x = (int)(px % w);
        const int y = (int)(px / w);
        float v = 0.0f;
        if (y / 2 < ho && x / 2 < wo) {
            const long long o = ((long long)(y / 2) * wo + x / 2) * ch_count + ch;
            const long long img = row / heads;
            if ((long long)argmax[img * out_map + o] == local) {
                v = c[row * out_map + o] * m[img * in_map + local];
            }
        }
        out[e] = v;
    }
}

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
