// heatmap.cu — the heatmap of docs/method.md §Heatmaps on the device, so that a run that writes
// pictures only downloads one value per pixel: (pixels, C) → (pixels), each pixel's channels
// combined in channel order (CPU twin: src/backend/cpu/mod.rs `heatmap`, the same sums).
//
// Threads: one per pixel, grid-stride.
#include "common.cuh"

#define HEATMAP_POSITIVE 0
#define HEATMAP_SIGNED 1
#define HEATMAP_ABSOLUTE 2

extern "C" __global__ void heatmap(
    const float* __restrict__ r,  // (pixels, C): every row's maps, channels last
    float* __restrict__ out,      // (pixels)
    long long pixels, int c, int kind)
{
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < pixels;
         p += (long long)gridDim.x * blockDim.x) {
        const float* px = r + p * c;
        float sum = 0.0f;
        for (int k = 0; k < c; ++k) {
            const float v = px[k];
            sum += kind == HEATMAP_POSITIVE ? fmaxf(v, 0.0f) : kind == HEATMAP_SIGNED ? v : fabsf(v);
        }
        out[p] = sum;
    }
}
