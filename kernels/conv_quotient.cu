// conv_quotient.cu — the z⁺ / z^B quotient of a conv layer (docs/method.md §Rules):
//   z = conv3x3(a, W_set) + β,  s[n·K + k] = R[n·K + k] / stab(z[n])  for each of K heads.
// The denominator z is computed once per image and divides the relevance of each of its heads in
// the epilogue: the K heads of an image (several methods and targets) share it (docs/method.md §Properties).
// CPU twin: src/backend/cpu/conv.rs `conv_quotient`.
//
// Variants:
// - conv_quotient: implicit GEMM over the N images' positions (conv_tile.cuh),
//   grid (⌈N·H·W / CONV_BM⌉, ⌈Cout / CONV_BN⌉); each C element writes K quotients.
// - conv_quotient_v1: direct loop, one thread per (position, channel) of an image, the checker.
// `beta` is null for the bias mode `none`; stab_kind/stab_value as in common.cuh.
#include "conv_tile.cuh"

struct QuotientEpilogue {
    const float* beta;  // (Cout) or null
    const float* r;     // (N·K, H, W, Cout)
    float* s;           // (N·K, H, W, Cout)
    long long hw;
    int heads, cout, stab_kind;
    float stab_value;
    __device__ __forceinline__ void operator()(long long m, int n, float acc) const {
        const float z = beta != nullptr ? acc + beta[n] : acc;
        const float d = stabilize(z, stab_kind, stab_value);
        const long long img = m / hw;
        const long long pos = m - img * hw;
        for (int k = 0; k < heads; ++k) {
            const long long i = ((img * heads + k) * hw + pos) * cout + n;
            s[i] = r[i] / d;
        }
    }
};

extern "C" __global__ void __launch_bounds__(CONV_THREADS) conv_quotient(
    const float* __restrict__ a,     // (N, H, W, Cin)
    const float* __restrict__ w,     // (9·Cin, Cout), W or W⁺
    const float* __restrict__ beta,  // (Cout) or null
    const float* __restrict__ r,     // (N·K, H, W, Cout)
    float* __restrict__ s,           // (N·K, H, W, Cout)
    int n, int heads, int h, int w_, int cin, int cout, int stab_kind, float stab_value)
{
    const QuotientEpilogue epilogue{beta, r, s, (long long)h * w_, heads, cout, stab_kind,
                                    stab_value};
    conv_tile(a, w, n, h, w_, cin, cout, epilogue);
}

extern "C" __global__ void conv_quotient_v1(
    const float* __restrict__ a,     // (N, H, W, Cin)
    const float* __restrict__ w,     // (9·Cin, Cout), W or W⁺
    const float* __restrict__ beta,  // (Cout) or null
    const float* __restrict__ r,     // (N·K, H, W, Cout)
    float* __restrict__ s,           // (N·K, H, W, Cout)
    int n, int heads, int h, int w_, int cin, int cout, int stab_kind, float stab_value)
{
    const QuotientEpilogue epilogue{beta, r, s, (long long)h * w_, heads, cout, stab_kind,
                                    stab_value};
    const long long total = (long long)n * h * w_ * cout;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long m = e / cout;
        const int co = (int)(e - m * cout);
        epilogue(m, co, conv_direct(a, w, h, w_, cin, cout, m, co));
    }
}
