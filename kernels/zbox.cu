// zbox.cu — the element-wise ends of the z^B rule on the first conv (docs/method.md §Rules), kept on the
// device so that the image-sized buffers never cross to the host:
//   zbox_input: x (N, H, W, C) → [x − l | x − h] (N, H, W, 2C), the doubled input that makes
//               z^B one z⁺-shaped pass with weights [W⁺ | W⁻];
//   zbox_sum:   (R, H, W, 2C) → (R, H, W, C), the two halves of that pass's relevance added.
// CPU twins: CpuBackend::zbox_input and CpuBackend::zbox_sum in src/backend/cpu/mod.rs.
//
// Threads: one per output element, grid-stride.
#include "common.cuh"

extern "C" __global__ void zbox_input(
    const float* __restrict__ x,      // (pixels, C)
    const float* __restrict__ bounds, // l (C values), then h (C values)
    float* __restrict__ out,          // (pixels, 2C)
    long long pixels, int c)
{
    const long long total = pixels * 2 * c;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long px = e / (2 * c);
        const int k = (int)(e - px * 2 * c);  // 0‥C−1: x − l; C‥2C−1: x − h
        const int ch = k < c ? k : k - c;
        out[e] = x[px * c + ch] - bounds[k];
    }
}

extern "C" __global__ void zbox_sum(
    const float* __restrict__ halves, // (pixels, 2C)
    float* __restrict__ out,          // (pixels, C)
    long long pixels, int c)
{
    const long long total = pixels * c;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long px = e / c;
        const int ch = (int)(e - px * c);
        out[e] = halves[px * 2 * c + ch] + halves[px * 2 * c + c + ch];
    }
}
