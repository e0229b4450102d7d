// conv_mma.cu — the 3×3 / stride-1 / pad-1 convolutions of a VGG layer on tensor cores
// (mma_gemm.cuh), one entry point per (op, math, tile), picked by the tile table of
// src/backend/cuda/config.rs (`conv_entry`) and launched by src/backend/cuda/mma.rs:
// - conv_mma_fwd_*:  y = relu(conv3x3(x, W) + b) (relu = 0: no ReLU);
// - conv_mma_dual_*: a′ and q of the fused z⁺ formulation from W and W⁺ over one pass of A
//   (mma_epilogue.cuh, MmaDual);
// - conv_mma_t_*:    out = conv3x3ᵀ(g, W_set) · mul[image of row], the transposed pass (the
//   weights prepared flipped and transposed), rows n·K + k.
// Math: _tf32 (m16n8k8, operands rounded by cvt.rna), _bf16 (m16n8k16, bf16 storage, f32 sums),
// _tf32x3 (three tf32 products: f32 accuracy). Tiles: _l (MMA_L_* for fwd / t, MMA_LD_* for
// dual) and _s (MMA_S_*), with MMA_STAGES stages. Weights: n-major, rows of kp elements (see
// mma_gemm.cuh). Checkers: the `_v1` kernels of conv3x3_forward.cu, conv_quotient.cu and
// conv_transpose.cu, and the CPU backend (tests/mma_emu.rs).
#include "mma_gemm.cuh"
#include "mma_epilogue.cuh"

#define MMA_THREADS(BM, BN, WM, WN) (32 * ((BM) / (WM)) * ((BN) / (WN)))

#define CONV_MMA_FWD(NAME, MATH, BM, BN, WM, WN)                                                \
    extern "C" __global__ void __launch_bounds__(MMA_THREADS(BM, BN, WM, WN)) NAME(            \
        const void* x, const void* w, const float* bias, void* y, int rows, int h, int w_,      \
        int cin, int cout, int kp, int relu, int a_f32, int out_f32) {                          \
        const MmaA a{x, (long long)rows * h * w_, h, w_, cin, 9, a_f32 != 0};                   \
        const void* const b[1] = {w};                                                           \
        const MmaFwd epi{bias, y, cout, relu, (MATH) == MATH_BF16 && !out_f32};                 \
        mma_gemm_run<MATH, BM, BN, WM, WN, MMA_STAGES, 1>(a, b, cout, kp, 0, 9 * cin, epi);     \
    }

#define CONV_MMA_DUAL(NAME, MATH, BM, BN, WM, WN)                                               \
    extern "C" __global__ void __launch_bounds__(MMA_THREADS(BM, BN, WM, WN)) NAME(            \
        const void* x, const void* w, const void* w_pos, const float* bias, const float* beta,  \
        void* act, void* q, int rows, int h, int w_, int cin, int cout, int kp, int relu,       \
        int q_mode, int stab_kind, float stab_value, int a_f32, int out_f32) {                  \
        const MmaA a{x, (long long)rows * h * w_, h, w_, cin, 9, a_f32 != 0};                   \
        const void* const b[2] = {w, w_pos};                                                    \
        const MmaDual epi{bias,   beta,      act,        q,                                     \
                          cout,   relu,      q_mode,     stab_kind,                             \
                          stab_value, (MATH) == MATH_BF16 && !out_f32};                         \
        mma_gemm_run<MATH, BM, BN, WM, WN, MMA_STAGES, 2>(a, b, cout, kp, 0, 9 * cin, epi);     \
    }

#define CONV_MMA_T(NAME, MATH, BM, BN, WM, WN)                                                  \
    extern "C" __global__ void __launch_bounds__(MMA_THREADS(BM, BN, WM, WN)) NAME(            \
        const void* g, const void* wt, const void* mul, void* out, int rows, int heads, int h,  \
        int w_, int cout, int cin, int kp, int a_f32, int out_f32) {                            \
        const MmaA a{g, (long long)rows * h * w_, h, w_, cout, 9, a_f32 != 0};                  \
        const void* const b[1] = {wt};                                                          \
        const MmaT epi{mul,  out, (long long)h * w_, heads, cin, (MATH) == MATH_BF16,           \
                       (MATH) == MATH_BF16 && !out_f32};                                        \
        mma_gemm_run<MATH, BM, BN, WM, WN, MMA_STAGES, 1>(a, b, cin, kp, 0, 9 * cout, epi);     \
    }

#define CONV_MMA_ALL(MATH, SUFFIX)                                                              \
    CONV_MMA_FWD(conv_mma_fwd_##SUFFIX##_l, MATH, MMA_L_BM, MMA_L_BN, MMA_L_WM, MMA_L_WN)       \
    CONV_MMA_FWD(conv_mma_fwd_##SUFFIX##_s, MATH, MMA_S_BM, MMA_S_BN, MMA_S_WM, MMA_S_WN)       \
    CONV_MMA_DUAL(conv_mma_dual_##SUFFIX##_l, MATH, MMA_LD_BM, MMA_LD_BN, MMA_LD_WM, MMA_LD_WN) \
    CONV_MMA_DUAL(conv_mma_dual_##SUFFIX##_s, MATH, MMA_S_BM, MMA_S_BN, MMA_S_WM, MMA_S_WN)     \
    CONV_MMA_T(conv_mma_t_##SUFFIX##_l, MATH, MMA_L_BM, MMA_L_BN, MMA_L_WM, MMA_L_WN)           \
    CONV_MMA_T(conv_mma_t_##SUFFIX##_s, MATH, MMA_S_BM, MMA_S_BN, MMA_S_WM, MMA_S_WN)

CONV_MMA_ALL(MATH_TF32, tf32)
CONV_MMA_ALL(MATH_BF16, bf16)
CONV_MMA_ALL(MATH_TF32X3, tf32x3)
