// dense_mma.cu — the dense layers on tensor cores (mma_gemm.cuh with taps = 1), the twins of
// conv_mma.cu's three ops: dense_mma_fwd_* (y = W x + b, optional ReLU), dense_mma_dual_* (a′ and q
// from W and W⁺), dense_mma_t_* (out = g · W_set times the multiplier of row / K's image; the
// weights prepared transposed, (in, kp)). Tile MMA_S_*.
//
// A batch has few rows against a long reduction, so the k range can be split over grid.z
// (`k_split` elements per slice, a multiple of the stage depth): each slice writes its sums to
// `partial` (slices, NB, rows, N), and dense_mma_reduce_{fwd,dual,t} add the slices in a fixed
// order and apply the epilogue, so results do not depend on scheduling. With `partial` null the
// epilogue runs in place (one slice).
#include "mma_gemm.cuh"
#include "mma_epilogue.cuh"

#define DENSE_MMA_THREADS (32 * (MMA_S_BM / MMA_S_WM) * (MMA_S_BN / MMA_S_WN))

template <int MATH, int NB, class Epilogue>
__device__ __forceinline__ void dense_mma(const MmaA& a, const void* const (&b)[NB], int n_total,
                                          int kp, int k_split, float* partial,
                                          const Epilogue& epi) {
    const int k_total = a.c;
    const int k_begin = blockIdx.z * k_split;
    const int k_end = min(k_total, k_begin + k_split);
    if (partial == nullptr) {
        mma_gemm_run<MATH, MMA_S_BM, MMA_S_BN, MMA_S_WM, MMA_S_WN, MMA_STAGES, NB>(
            a, b, n_total, kp, k_begin, k_end, epi);
    } else {
        const MmaPartial<NB> part{partial, a.m_total, n_total};
        mma_gemm_run<MATH, MMA_S_BM, MMA_S_BN, MMA_S_WM, MMA_S_WN, MMA_STAGES, NB>(
            a, b, n_total, kp, k_begin, k_end, part);
    }
}

#define DENSE_MMA_ENTRIES(MATH, SUFFIX)                                                          \
    extern "C" __global__ void __launch_bounds__(DENSE_MMA_THREADS) dense_mma_fwd_##SUFFIX(     \
        const void* x, const void* w, const float* bias, void* y, int rows, int in, int out,     \
        int kp, int relu, int a_f32, int out_f32, int k_split, float* partial) {                 \
        const MmaA a{x, rows, 1, 1, in, 1, a_f32 != 0};                                          \
        const void* const b[1] = {w};                                                            \
        const MmaFwd epi{bias, y, out, relu, (MATH) == MATH_BF16 && !out_f32};                   \
        dense_mma<MATH, 1>(a, b, out, kp, k_split, partial, epi);                                \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(DENSE_MMA_THREADS) dense_mma_dual_##SUFFIX(    \
        const void* x, const void* w, const void* w_pos, const float* bias, const float* beta,   \
        void* act, void* q, int rows, int in, int out, int kp, int relu, int q_mode,             \
        int stab_kind, float stab_value, int a_f32, int out_f32, int k_split, float* partial) {  \
        const MmaA a{x, rows, 1, 1, in, 1, a_f32 != 0};                                          \
        const void* const b[2] = {w, w_pos};                                                     \
        const MmaDual epi{bias,      beta,   act,    q,         out,                             \
                          relu,      q_mode, stab_kind, stab_value,                              \
                          (MATH) == MATH_BF16 && !out_f32};                                      \
        dense_mma<MATH, 2>(a, b, out, kp, k_split, partial, epi);                                \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(DENSE_MMA_THREADS) dense_mma_t_##SUFFIX(       \
        const void* g, const void* wt, const void* mul, void* c, int rows, int heads, int out,   \
        int in, int kp, int a_f32, int out_f32, int k_split, float* partial) {                   \
        const MmaA a{g, rows, 1, 1, out, 1, a_f32 != 0};                                         \
        const void* const b[1] = {wt};                                                           \
        const MmaT epi{mul, c, 1, heads, in, (MATH) == MATH_BF16,                                \
                       (MATH) == MATH_BF16 && !out_f32};                                         \
        dense_mma<MATH, 1>(a, b, in, kp, k_split, partial, epi);                                 \
    }

DENSE_MMA_ENTRIES(MATH_TF32, tf32)
DENSE_MMA_ENTRIES(MATH_BF16, bf16)
DENSE_MMA_ENTRIES(MATH_TF32X3, tf32x3)

// The sum over `slices` of partial[(s·NB + op)·M·N + e], in order, for element e = m·N + n.
template <int NB>
__device__ __forceinline__ void mma_slices(const float* partial, int slices, long long mn,
                                           long long e, float (&v)[NB]) {
#pragma unroll
    for (int op = 0; op < NB; ++op) {
        float s = 0.0f;
        for (int z = 0; z < slices; ++z) s += partial[((long long)z * NB + op) * mn + e];
        v[op] = s;
    }
}

#define MMA_GRID_STRIDE(TOTAL)                                                                   \
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (TOTAL);           \
         e += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void dense_mma_reduce_fwd(const float* partial, int slices,
                                                const float* bias, void* y, int rows, int out,
                                                int relu, int bf16) {
    const MmaFwd epi{bias, y, out, relu, bf16 != 0};
    const long long mn = (long long)rows * out;
    MMA_GRID_STRIDE(mn) {
        float v[1];
        mma_slices<1>(partial, slices, mn, e, v);
        epi(e / out, (int)(e % out), v);
    }
}

extern "C" __global__ void dense_mma_reduce_dual(const float* partial, int slices,
                                                 const float* bias, const float* beta, void* act,
                                                 void* q, int rows, int out, int relu, int q_mode,
                                                 int stab_kind, float stab_value, int bf16) {
    const MmaDual epi{bias, beta, act, q, out, relu, q_mode, stab_kind, stab_value, bf16 != 0};
    const long long mn = (long long)rows * out;
    MMA_GRID_STRIDE(mn) {
        float v[2];
        mma_slices<2>(partial, slices, mn, e, v);
        epi(e / out, (int)(e % out), v);
    }
}

extern "C" __global__ void dense_mma_reduce_t(const float* partial, int slices, const void* mul,
                                              void* c, int rows, int heads, int in, int mul_bf16,
                                              int bf16) {
    const MmaT epi{mul, c, 1, heads, in, mul_bf16 != 0, bf16 != 0};
    const long long mn = (long long)rows * in;
    MMA_GRID_STRIDE(mn) {
        float v[1];
        mma_slices<1>(partial, slices, mn, e, v);
        epi(e / in, (int)(e % in), v);
    }
}
