// prepare.cu — the weight layouts the other kernels read, made once on the device at load time.
// CPU twins: CpuConv::new (src/backend/cpu/conv.rs) and CpuDense::new (src/backend/cpu/dense.rs).
//
// - prepare_conv: from the file's (Cout, Cin, 3, 3) to the implicit-GEMM operand W (9·Cin, Cout),
//   its positive part W⁺, and the flipped, transposed Wᵀ (9·Cout, Cin) and Wᵀ⁺ of the transposed
//   convolution. One thread per source element, grid-stride.
// - positive: dst = max(src, 0), for dense W⁺ and β = max(b, 0). One thread per element.
#include "common.cuh"

extern "C" __global__ void prepare_conv(
    const float* __restrict__ src,  // (Cout, Cin, 3, 3)
    float* __restrict__ w,          // (9·Cin, Cout)
    float* __restrict__ w_pos,      // (9·Cin, Cout)
    float* __restrict__ wt,         // (9·Cout, Cin)
    float* __restrict__ wt_pos,     // (9·Cout, Cin)
    int cin, int cout)
{
    const long long total = (long long)cout * cin * 9;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const int tap = (int)(e % 9);
        const long long t = e / 9;
        const int ci = (int)(t % cin);
        const int co = (int)(t / cin);
        const float v = src[e];
        const long long i = ((long long)tap * cin + ci) * cout + co;
        const long long it = ((long long)(8 - tap) * cout + co) * cin + ci;
        w[i] = v;
        w_pos[i] = fmaxf(v, 0.0f);
        wt[it] = v;
        wt_pos[it] = fmaxf(v, 0.0f);
    }
}

extern "C" __global__ void positive(
    const float* __restrict__ src,  // (len)
    float* __restrict__ dst,        // (len)
    long long len)
{
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < len;
         e += (long long)gridDim.x * blockDim.x) {
        dst[e] = fmaxf(src[e], 0.0f);
    }
}
