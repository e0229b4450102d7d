// conv_transpose.cu — the transposed convolution c = conv3x3ᵀ(g, W_set), multiplied by the
// activation of the head's image when one is given: the z⁺ redistribution R_in = a · c
// (docs/method.md §Rules), and, without the activation, the gradient through a conv layer (docs/evaluation.md).
// conv3x3ᵀ is the correlation with the flipped kernel, input and output channels swapped; the
// weights arrive prepared in that layout, (9·Cout, Cin) (prepare.cu), so this is the same
// implicit GEMM as the forward pass with Cout → Cin channels. CPU twin: src/backend/cpu/conv.rs
// `conv_transpose`.
//
// Variants:
// - conv_transpose: implicit GEMM over all N·K maps (conv_tile.cuh),
//   grid (⌈N·K·H·W / CONV_BM⌉, ⌈Cin / CONV_BN⌉).
// - conv_transpose_v1: direct loop, one thread per output element, the checker.
// `act` is null when there is no activation to multiply by; map row r reads image r / K.
#include "conv_tile.cuh"

struct TransposeEpilogue {
    const float* act;  // (N, H, W, Cin) or null
    float* out;        // (N·K, H, W, Cin)
    long long hw;
    int heads, cout;
    __device__ __forceinline__ void operator()(long long m, int n, float acc) const {
        float v = acc;
        if (act != nullptr) {
            const long long row = m / hw;
            const long long pos = m - row * hw;
            v *= act[((row / heads) * hw + pos) * cout + n];
        }
        out[m * cout + n] = v;
    }
};

extern "C" __global__ void __launch_bounds__(CONV_THREADS) conv_transpose(
    const float* __restrict__ g,    // (N·K, H, W, Cout)
    const float* __restrict__ wt,   // (9·Cout, Cin): flipped, transposed
    const float* __restrict__ act,  // (N, H, W, Cin) or null
    float* __restrict__ out,        // (N·K, H, W, Cin)
    int rows, int heads, int h, int w_, int cout, int cin)
{
    conv_tile(g, wt, rows, h, w_, cout, cin,
              TransposeEpilogue{act, out, (long long)h * w_, heads, cin});
}

extern "C" __global__ void conv_transpose_v1(
    const float* __restrict__ g,    // (N·K, H, W, Cout)
    const float* __restrict__ wt,   // (9·Cout, Cin): flipped, transposed
    const float* __restrict__ act,  // (N, H, W, Cin) or null
    float* __restrict__ out,        // (N·K, H, W, Cin)
    int rows, int heads, int h, int w_, int cout, int cin)
{
    const TransposeEpilogue epilogue{act, out, (long long)h * w_, heads, cin};
    const long long total = (long long)rows * h * w_ * cin;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long m = e / cin;
        const int ci = (int)(e - m * cin);
        epilogue(m, ci, conv_direct(g, wt, h, w_, cout, cin, m, ci));
    }
}
