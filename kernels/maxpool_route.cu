// maxpool_route.cu — max-pool routing: each output's relevance (or gradient) goes wholly to the
// argmax of its window; every other input position gets 0.
// - maxpool_route: the routing alone (CPU twin: src/backend/cpu/pool.rs `maxpool_route`);
// - maxpool_route_scaled: the routing times a map of the pool's input per image, the fused z⁺
//   pass's s_below = q_below ⊙ route(c) (docs/method.md §Rules): the value routed to position p
//   of row r is multiplied by m[r / K][p] (CPU twin: src/backend/cpu/mod.rs
//   `maxpool_route_scaled`).
//
// Threads: one per INPUT element (row, y, x, c) of the N·K maps, grid-stride: it looks up the
// window it belongs to (none for the last row/column of an odd side) and takes that window's
// value when the window's argmax is this position. Windows do not overlap, so this gather
// writes every element exactly once: no zero-fill pass, no atomics. Map row r reads the argmax
// of image r / K.
#include "common.cuh"

// The body of both entry points; m is null for the routing alone (a constant once inlined).
__device__ __forceinline__ void maxpool_route_body(
    const float* __restrict__ r,          // (N·K, H/2, W/2, C)
    const unsigned* __restrict__ argmax,  // (N, H/2, W/2, C)
    const float* __restrict__ m,          // (N, H, W, C) or null
    float* __restrict__ out,              // (N·K, H, W, C)
    int rows, int heads, int h, int w, int c)
{
    const int ho = h / 2, wo = w / 2;
    const long long in_map = (long long)h * w * c;
    const long long out_map = (long long)ho * wo * c;
    const long long total = (long long)rows * in_map;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long row = e / in_map;
        const long long local = e - row * in_map;
        const int ch = (int)(local % c);
        const long long px = local / c;
        const int x = (int)(px % w);
        const int y = (int)(px / w);
        float v = 0.0f;
        if (y / 2 < ho && x / 2 < wo) {
            const long long o = ((long long)(y / 2) * wo + x / 2) * c + ch;
            const long long img = row / heads;
            if ((long long)argmax[img * out_map + o] == local) {
                v = r[row * out_map + o];
                if (m != nullptr) v *= m[img * in_map + local];
            }
        }
        out[e] = v;
    }
}

extern "C" __global__ void maxpool_route(
    const float* __restrict__ r, const unsigned* __restrict__ argmax, float* __restrict__ out,
    int rows, int heads, int h, int w, int c)
{
    maxpool_route_body(r, argmax, nullptr, out, rows, heads, h, w, c);
}

extern "C" __global__ void maxpool_route_scaled(
    const float* __restrict__ r, const unsigned* __restrict__ argmax,
    const float* __restrict__ m, float* __restrict__ out,
    int rows, int heads, int h, int w, int c)
{
    maxpool_route_body(r, argmax, m, out, rows, heads, h, w, c);
}
