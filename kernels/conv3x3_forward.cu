// conv3x3_forward.cu — y = relu(conv3x3(x, W) + b): the forward pass of a conv layer, bias and
// ReLU fused into the epilogue. CPU twin: src/backend/cpu/conv.rs `conv3x3_forward`.
//
// Variants:
// - conv3x3_forward: implicit GEMM (conv_tile.cuh), one block per CONV_BM positions ×
//   CONV_BN output channels, grid (⌈N·H·W / CONV_BM⌉, ⌈Cout / CONV_BN⌉).
// - conv3x3_forward_v1: direct loop, one thread per output element (grid-stride), the checker.
#include "conv_tile.cuh"

struct ForwardEpilogue {
    const float* bias;  // (Cout)
    float* y;           // (N, H, W, Cout)
    int cout;
    __device__ __forceinline__ void operator()(long long m, int n, float acc) const {
        y[m * cout + n] = fmaxf(acc + bias[n], 0.0f);
    }
};

extern "C" __global__ void __launch_bounds__(CONV_THREADS) conv3x3_forward(
    const float* __restrict__ x,     // (N, H, W, Cin)
    const float* __restrict__ w,     // (9·Cin, Cout)
    const float* __restrict__ bias,  // (Cout)
    float* __restrict__ y,           // (N, H, W, Cout)
    int n, int h, int w_, int cin, int cout)
{
    conv_tile(x, w, n, h, w_, cin, cout, ForwardEpilogue{bias, y, cout});
}

extern "C" __global__ void conv3x3_forward_v1(
    const float* __restrict__ x,     // (N, H, W, Cin)
    const float* __restrict__ w,     // (9·Cin, Cout)
    const float* __restrict__ bias,  // (Cout)
    float* __restrict__ y,           // (N, H, W, Cout)
    int n, int h, int w_, int cin, int cout)
{
    const long long total = (long long)n * h * w_ * cout;
    const ForwardEpilogue epilogue{bias, y, cout};
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long m = e / cout;
        const int co = (int)(e - m * cout);
        epilogue(m, co, conv_direct(x, w, h, w_, cin, cout, m, co));
    }
}
