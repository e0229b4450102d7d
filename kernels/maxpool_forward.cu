// maxpool_forward.cu — 2×2, stride-2 max pooling with floor (an odd side loses its last row or
// column), recording per output the flat index (y·W + x)·C + c within its image of the first
// maximum in row-major window order (the tie rule of docs/method.md §Rules). CPU twin: src/backend/cpu/pool.rs
// `maxpool_forward`.
//
// Threads: one per output element (n, oy, ox, c), grid-stride; consecutive threads take
// consecutive channels, so loads and stores are coalesced.
#include "common.cuh"

extern "C" __global__ void maxpool_forward(
    const float* __restrict__ x,        // (N, H, W, C)
    float* __restrict__ y,              // (N, H/2, W/2, C)
    unsigned* __restrict__ argmax,      // (N, H/2, W/2, C)
    int n, int h, int w, int c)
{
    const int ho = h / 2, wo = w / 2;
    const long long total = (long long)n * ho * wo * c;
    const long long in_map = (long long)h * w * c;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(o % c);
        long long t = o / c;
        const int ox = (int)(t % wo);
        t /= wo;
        const int oy = (int)(t % ho);
        const long long img = t / ho;
        const float* xm = x + img * in_map;
        long long best = -1;
        float best_v = 0.0f;
#pragma unroll
        for (int d = 0; d < 4; ++d) {
            const long long i = ((long long)(2 * oy + d / 2) * w + 2 * ox + d % 2) * c + ch;
            const float v = xm[i];
            if (best < 0 || v > best_v) {
                best = i;
                best_v = v;
            }
        }
        y[o] = best_v;
        argmax[o] = (unsigned)best;
    }
}
