// dense_dual.cu — the fused forward of a dense layer, the dense twin of conv_dual.cu:
// a′ = W x + b (ReLU when asked) and q = a′ / stab(W⁺ x + β); without ReLU (the logits)
// q = 1 / stab(W⁺ x + β), so the top quotient is the head times q. CPU twin:
// src/backend/cpu/dense.rs `dense_dual`.
//
// Threads: as the partial kernel of dense_forward.cu, one warp per output j (dense_rows.cuh)
// over DENSE_ROWS rows, the row chunks fastest: grid (⌈n / DENSE_ROWS⌉, ⌈out / DENSE_WARPS⌉, 1),
// one slice of all the inputs (the epilogue needs the whole sums). The two products read the rows' inputs from
// shared memory twice and each weight matrix once: the layer stays bound by the weight reads.
// `beta` is null for the bias mode `none`.
#include "dense_rows.cuh"

extern "C" __global__ void __launch_bounds__(DENSE_WARPS * 32) dense_dual(
    const float* __restrict__ x,      // (n, in)
    const float* __restrict__ w,      // (out, in)
    const float* __restrict__ w_pos,  // (out, in), max(W, 0)
    const float* __restrict__ bias,   // (out)
    const float* __restrict__ beta,   // (out) or null
    float* __restrict__ y,            // (n, out)
    float* __restrict__ q,            // (n, out)
    int n, int in, int out, int relu, int stab_kind, float stab_value)
{
    const int lane = threadIdx.x % 32;
    const int r0 = blockIdx.x * DENSE_ROWS;
    const int j = blockIdx.y * DENSE_WARPS + threadIdx.x / 32;
    float z[DENSE_ROWS], zp[DENSE_ROWS];
    dense_rows(x, w, n, in, 0, in, j, j < out, r0, z);
    dense_rows(x, w_pos, n, in, 0, in, j, j < out, r0, zp);
    if (j >= out) return;
#pragma unroll
    for (int r = 0; r < DENSE_ROWS; ++r) {
        if (lane == r && r0 + r < n) {
            const float v = z[r] + bias[j];
            const float a = relu ? fmaxf(v, 0.0f) : v;
            const float d = stabilize(beta != nullptr ? zp[r] + beta[j] : zp[r], stab_kind,
                                      stab_value);
            const long long i = (long long)(r0 + r) * out + j;
            y[i] = a;
            q[i] = (relu ? a : 1.0f) / d;
        }
    }
}
