// dense_quotient.cu — the z⁺ quotient of a dense layer (docs/method.md §Rules):
//   z = W⁺ a + β,  s[n·K + k] = R[n·K + k] / stab(z[n])  for each of K heads,
// the dense twin of conv_quotient.cu: z is computed once per image and divides every head.
// CPU twin: src/backend/cpu/dense.rs `dense_quotient`.
//
// Threads: one warp per output j (dense_rows.cuh) over DENSE_ROWS images; grid
// (⌈out / DENSE_WARPS⌉, ⌈N / DENSE_ROWS⌉). Lane r writes the K quotients of image r0 + r.
// `beta` is null for the bias mode `none`.
#include "dense_rows.cuh"

extern "C" __global__ void __launch_bounds__(DENSE_WARPS * 32) dense_quotient(
    const float* __restrict__ a,      // (N, in)
    const float* __restrict__ w_pos,  // (out, in), max(W, 0)
    const float* __restrict__ beta,   // (out) or null
    const float* __restrict__ r,      // (N·K, out)
    float* __restrict__ s,            // (N·K, out)
    int n, int heads, int in, int out, int stab_kind, float stab_value)
{
    const int lane = threadIdx.x % 32;
    const int j = blockIdx.x * DENSE_WARPS + threadIdx.x / 32;
    const int r0 = blockIdx.y * DENSE_ROWS;
    float acc[DENSE_ROWS];
    dense_rows(a, w_pos, n, in, j, j < out, r0, acc);
    if (j >= out) return;
#pragma unroll
    for (int q = 0; q < DENSE_ROWS; ++q) {
        if (lane == q && r0 + q < n) {
            const float z = beta != nullptr ? acc[q] + beta[j] : acc[q];
            const float d = stabilize(z, stab_kind, stab_value);
            const long long img = r0 + q;
            for (int k = 0; k < heads; ++k) {
                const long long i = (img * heads + k) * out + j;
                s[i] = r[i] / d;
            }
        }
    }
}
