// dense_quotient.cu — the z⁺ quotient of a dense layer (docs/method.md §Rules):
//   z = W⁺ a + β,  s[n·K + k] = R[n·K + k] / stab(z[n])  for each of K heads,
// the dense twin of conv_quotient.cu: z is computed once per image and divides every head.
// CPU twin: src/backend/cpu/dense.rs `dense_quotient`.
//
// A deterministic split-K pair like dense_forward.cu:
// - dense_quotient_partial: the partial sums of W⁺ a over each input slice (dense_rows.cuh);
// - dense_quotient_reduce: one thread per (image, output): the slices added in order, β, the
//   stabiliser, then the K quotients. `beta` is null for the bias mode `none`.
#include "dense_rows.cuh"

extern "C" __global__ void __launch_bounds__(DENSE_WARPS * 32) dense_quotient_partial(
    const float* __restrict__ a,      // (N, in)
    const float* __restrict__ w_pos,  // (out, in), max(W, 0)
    float* __restrict__ partial,      // (slices, N, out)
    int n, int in, int out, int k_slice)
{
    dense_partial_sums(a, w_pos, partial, n, in, out, k_slice);
}

extern "C" __global__ void dense_quotient_reduce(
    const float* __restrict__ partial,  // (slices, N, out)
    const float* __restrict__ beta,     // (out) or null
    const float* __restrict__ r,        // (N·K, out)
    float* __restrict__ s,              // (N·K, out)
    int n, int heads, int out, int slices, int stab_kind, float stab_value)
{
    const long long total = (long long)n * out;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long img = e / out;
        const int j = (int)(e - img * out);
        float z = dense_slices_sum(partial, total, e, slices);
        if (beta != nullptr) z += beta[j];
        const float d = stabilize(z, stab_kind, stab_value);
        for (int k = 0; k < heads; ++k) {
            const long long i = (img * heads + k) * out + j;
            s[i] = r[i] / d;
        }
    }
}
