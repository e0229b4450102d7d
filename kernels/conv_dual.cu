// conv_dual.cu — the fused forward of a conv layer (docs/method.md §Rules, the fused z⁺ pass):
// from one pass over the input, both products z = conv3x3(x, W) and z⁺ = conv3x3(x, W⁺), and
// stores a′ = relu(z + b) (the layer's output) and q = a′ / stab(z⁺ + β). The backward pass then
// needs no quotient convolution: s = q ⊙ conv3x3ᵀ(s_above, W⁺). CPU twin: src/backend/cpu/conv.rs
// `conv3x3_dual`.
//
// Variants:
// - conv3x3_dual: implicit GEMM (conv_tile.cuh) with two B tiles (W and W⁺) per A tile,
//   grid (⌈N·H·W / CONV_BM⌉, ⌈Cout / CONV_BN⌉).
// - conv3x3_dual_v1: direct loop, one thread per output element, the checker.
// `beta` is null for the bias mode `none`; stab_kind/stab_value as in common.cuh.
#include "conv_tile.cuh"

struct DualEpilogue {
    const float* bias;  // (Cout)
    const float* beta;  // (Cout) or null
    float* y;           // (N, H, W, Cout): a′
    float* q;           // (N, H, W, Cout)
    int cout, stab_kind;
    float stab_value;
    __device__ __forceinline__ void operator()(long long m, int n, const float (&acc)[2]) const {
        const float a = fmaxf(acc[0] + bias[n], 0.0f);
        const float zp = beta != nullptr ? acc[1] + beta[n] : acc[1];
        y[m * cout + n] = a;
        q[m * cout + n] = a / stabilize(zp, stab_kind, stab_value);
    }
};

extern "C" __global__ void __launch_bounds__(CONV_THREADS) conv3x3_dual(
    const float* __restrict__ x,      // (N, H, W, Cin)
    const float* __restrict__ w,      // (9·Cin, Cout)
    const float* __restrict__ w_pos,  // (9·Cin, Cout), max(W, 0)
    const float* __restrict__ bias,   // (Cout)
    const float* __restrict__ beta,   // (Cout) or null
    float* __restrict__ y,            // (N, H, W, Cout)
    float* __restrict__ q,            // (N, H, W, Cout)
    int n, int h, int w_, int cin, int cout, int stab_kind, float stab_value)
{
    const DualEpilogue epilogue{bias, beta, y, q, cout, stab_kind, stab_value};
    conv_tile_sets<2>(x, ConvWeights<2>{{w, w_pos}}, n, h, w_, cin, cout, epilogue);
}

extern "C" __global__ void conv3x3_dual_v1(
    const float* __restrict__ x,      // (N, H, W, Cin)
    const float* __restrict__ w,      // (9·Cin, Cout)
    const float* __restrict__ w_pos,  // (9·Cin, Cout), max(W, 0)
    const float* __restrict__ bias,   // (Cout)
    const float* __restrict__ beta,   // (Cout) or null
    float* __restrict__ y,            // (N, H, W, Cout)
    float* __restrict__ q,            // (N, H, W, Cout)
    int n, int h, int w_, int cin, int cout, int stab_kind, float stab_value)
{
    const DualEpilogue epilogue{bias, beta, y, q, cout, stab_kind, stab_value};
    const long long total = (long long)n * h * w_ * cout;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long m = e / cout;
        const int co = (int)(e - m * cout);
        const float acc[2] = {conv_direct(x, w, h, w_, cin, cout, m, co),
                              conv_direct(x, w_pos, h, w_, cin, cout, m, co)};
        epilogue(m, co, acc);
    }
}
