// mma_gemm.cuh — the tensor-core main loop of conv_mma.cu and dense_mma.cu: one block computes a
// BM × BN tile of C = A · Bᵀ for NB weight matrices at once (NB = 2: W and W⁺ from the same A
// tile, the fused z / z⁺ forward of docs/gpu.md §Fused relevance pass), with an mma.sync per 16×8 piece.
//
// A (M × K) is an implicit-GEMM view of activations (rows, H, W, C) in NHWC: M = rows·H·W
// positions, K = taps·C, k = tap·C + c; taps = 9 is a 3×3, stride-1, pad-1 correlation
// (tap = ky·3 + kx, zero outside the map), taps = 1 a dense layer (H = W = 1). B is stored
// n-major with each row padded to `kp` elements (zeros past K): B[n][k] at b[n·kp + k].
//
// Storage: MATH_TF32 and MATH_TF32X3 read f32 words, rounded to tf32 in the fragments
// (3×TF32: x = big + small, both tf32, and big·big + big·small + small·big); MATH_BF16 reads
// bf16 (two per 4-byte word, the even k in the low half), or an f32 A converted on load
// (`a_f32`, the input map). Shared memory holds 4-byte words, so both maths use the same tiles:
// BKW words of k per stage (BKW tf32 or 2·BKW bf16 values), rows padded by 4 words so that the
// eight rows of an ldmatrix fall in distinct banks.
//
// Pipeline: STAGES stages in dynamic shared memory filled by cp.async (16 bytes, zero-filled
// outside the operands), one commit group per stage, wait_group STAGES − 2 and one barrier per
// step; A falls back to plain loads and stores where C is not a multiple of a 16-byte vector
// (the RGB input, odd dense widths). Warps: WARPS_M × WARPS_N, each a WM × WN piece of the tile,
// fragments through ldmatrix.x4.
#pragma once
#include "mma.cuh"

#define MATH_TF32 0
#define MATH_BF16 1
#define MATH_TF32X3 2

// The A operand.
struct MmaA {
    const void* data;  // (rows, H, W, C): f32, or bf16 for MATH_BF16 unless f32_src
    long long m_total;
    int h, w, c, taps;
    bool f32_src;
};

template <int MATH, int BM_, int BN_, int WM, int WN, int STAGES_, int NB>
struct MmaGemm {
    static constexpr int BM = BM_, BN = BN_, STAGES = STAGES_;
    static constexpr bool BF16 = MATH == MATH_BF16;
    static constexpr int BKW = MMA_BKW;            // words of k per stage
    static constexpr int EPW = BF16 ? 2 : 1;       // elements per word
    static constexpr int BK = BKW * EPW;           // elements of k per stage
    static constexpr int VEC = 4 * EPW;            // elements per 16-byte copy
    static constexpr int ROW = BKW + 4;            // padded row, words
    static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN;
    static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    static constexpr int MI = WM / 16, NI = WN / 8;
    static constexpr int CPR = BKW / 4;            // 16-byte chunks per row
    static constexpr int A_PER = BM * CPR / THREADS, B_PER = BN * CPR / THREADS;
    static constexpr int STAGE_WORDS = (BM + NB * BN) * ROW;
    static constexpr int SHARED_BYTES = STAGES * STAGE_WORDS * 4;
    static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 16 == 0, "warp tiles");
    static_assert(BKW % 8 == 0 && MMA_KPAD % BK == 0, "k steps");
    static_assert((BM * CPR) % THREADS == 0 && (BN * CPR) % THREADS == 0, "equal loads");
    static_assert(THREADS % CPR == 0, "a thread keeps its column of chunks");
};

// Element `k` of A's row at position (y, x) of flat position m, or 0 outside (scalar path).
__device__ __forceinline__ float mma_a_value(const MmaA& a, long long m, int y, int x, int k,
                                             int k_total, bool bf16_src) {
    if (m < 0 || k >= k_total) return 0.0f;
    const int tap = a.taps == 1 ? 0 : k / a.c;
    const int ci = k - tap * a.c;
    const int dy = a.taps == 1 ? 0 : tap / 3 - 1, dx = a.taps == 1 ? 0 : tap % 3 - 1;
    if (y + dy < 0 || y + dy >= a.h || x + dx < 0 || x + dx >= a.w) return 0.0f;
    const long long i = (m + (long long)dy * a.w + dx) * a.c + ci;
    if (bf16_src) {
        return bf16_lo(static_cast<const unsigned short*>(a.data)[i]);
    }
    return static_cast<const float*>(a.data)[i];
}

// Runs the main loop over k in [k_begin, k_end) (k_begin a multiple of BK) for the block's tile
// (blockIdx.x over M, blockIdx.y over N) and hands every C element in range to
// `epilogue(m, n, v)`, v[NB] the NB sums. Dynamic shared memory: G::SHARED_BYTES.
template <int MATH, int BM, int BN, int WM, int WN, int STAGES, int NB, class Epilogue>
__device__ __forceinline__ void mma_gemm_run(const MmaA& a, const void* const (&b)[NB],
                                             int n_total, int kp, int k_begin, int k_end,
                                             const Epilogue& epilogue) {
    using G = MmaGemm<MATH, BM, BN, WM, WN, STAGES, NB>;
    unsigned* smem = reinterpret_cast<unsigned*>(mma_dynamic_smem());
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wm = warp % G::WARPS_M, wn = warp / G::WARPS_M;
    const long long m0 = (long long)blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int k_total = a.taps * a.c;
    const bool bf16_src = G::BF16 && !a.f32_src;
    const bool a_vector = (a.c % G::VEC == 0) && (G::BF16 ? bf16_src : true);
    const size_t a_bytes = bf16_src ? 2 : 4;
    const size_t b_bytes = G::BF16 ? 2 : 4;

    // This thread's chunks: column cw of rows tid / CPR + i·THREADS / CPR.
    const int cw = tid % G::CPR;
    long long a_m[G::A_PER];
    int a_y[G::A_PER], a_x[G::A_PER];
    const long long hw = (long long)a.h * a.w;
#pragma unroll
    for (int i = 0; i < G::A_PER; ++i) {
        const long long m = m0 + tid / G::CPR + i * (G::THREADS / G::CPR);
        if (m < a.m_total) {
            const int pos = (int)(m % hw);
            a_m[i] = m;
            a_y[i] = pos / a.w;
            a_x[i] = pos - a_y[i] * a.w;
        } else {
            a_m[i] = -1;
            a_y[i] = 0;
            a_x[i] = 0;
        }
    }

    auto load_stage = [&](int stage, int k0) {
        unsigned* As = smem + stage * G::STAGE_WORDS;
        const int k = k0 + cw * G::VEC;
#pragma unroll
        for (int i = 0; i < G::A_PER; ++i) {
            const int r = tid / G::CPR + i * (G::THREADS / G::CPR);
            unsigned* dst = As + r * G::ROW + cw * 4;
            if (a_vector) {
                // The VEC elements share one tap: C is a multiple of VEC.
                const int tap = a.taps == 1 ? 0 : k / a.c;
                const int ci = k - tap * a.c;
                const int dy = a.taps == 1 ? 0 : tap / 3 - 1, dx = a.taps == 1 ? 0 : tap % 3 - 1;
                const bool valid = a_m[i] >= 0 && k < k_total && a_y[i] + dy >= 0 &&
                                   a_y[i] + dy < a.h && a_x[i] + dx >= 0 && a_x[i] + dx < a.w;
                const long long e = valid ? (a_m[i] + (long long)dy * a.w + dx) * a.c + ci : 0;
                cp_async16(dst, static_cast<const char*>(a.data) + e * a_bytes, valid);
            } else {
                unsigned words[4];
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                    if (G::BF16) {
                        const int ke = k + 2 * q;
                        words[q] = pack_bf16(
                            mma_a_value(a, a_m[i], a_y[i], a_x[i], ke, k_total, bf16_src),
                            mma_a_value(a, a_m[i], a_y[i], a_x[i], ke + 1, k_total, bf16_src));
                    } else {
                        words[q] = __float_as_uint(
                            mma_a_value(a, a_m[i], a_y[i], a_x[i], k + q, k_total, false));
                    }
                }
#pragma unroll
                for (int q = 0; q < 4; ++q) dst[q] = words[q];
            }
        }
#pragma unroll
        for (int op = 0; op < NB; ++op) {
            unsigned* Bs = As + BM * G::ROW + op * BN * G::ROW;
#pragma unroll
            for (int i = 0; i < G::B_PER; ++i) {
                const int r = tid / G::CPR + i * (G::THREADS / G::CPR);
                const int n = n0 + r;
                const bool valid = n < n_total;
                const long long e = valid ? (long long)n * kp + k : 0;
                cp_async16(Bs + r * G::ROW + cw * 4, static_cast<const char*>(b[op]) + e * b_bytes,
                           valid);
            }
        }
    };

    float acc[NB][G::MI][G::NI][4];
#pragma unroll
    for (int op = 0; op < NB; ++op)
#pragma unroll
        for (int i = 0; i < G::MI; ++i)
#pragma unroll
            for (int j = 0; j < G::NI; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[op][i][j][e] = 0.0f;

    // ldmatrix.x4 rows: lane 8·mat + row; A matrices (m 0-7 | 8-15) × (k words 0-3 | 4-7),
    // B matrices (k words 0-3 | 4-7) × (n 0-7 | 8-15).
    const int mat = lane / 8, mrow = lane % 8;
    const int a_row = wm * WM + (mat & 1) * 8 + mrow, a_word = (mat >> 1) * 4;
    const int b_row = wn * WN + (mat >> 1) * 8 + mrow, b_word = (mat & 1) * 4;

    auto compute_stage = [&](int stage) {
        const unsigned* As = smem + stage * G::STAGE_WORDS;
#pragma unroll
        for (int ks = 0; ks < G::BKW; ks += 8) {
            unsigned fa[G::MI][4];
#pragma unroll
            for (int i = 0; i < G::MI; ++i)
                ldmatrix_x4(fa[i], As + (a_row + i * 16) * G::ROW + ks + a_word);
#pragma unroll
            for (int op = 0; op < NB; ++op) {
                const unsigned* Bs = As + BM * G::ROW + op * BN * G::ROW;
                unsigned fb[G::NI][2];
#pragma unroll
                for (int j = 0; j < G::NI; j += 2) {
                    unsigned r[4];
                    ldmatrix_x4(r, Bs + (b_row + j * 8) * G::ROW + ks + b_word);
                    fb[j][0] = r[0];
                    fb[j][1] = r[1];
                    fb[j + 1][0] = r[2];
                    fb[j + 1][1] = r[3];
                }
                if (MATH == MATH_BF16) {
#pragma unroll
                    for (int i = 0; i < G::MI; ++i)
#pragma unroll
                        for (int j = 0; j < G::NI; ++j) mma_bf16(acc[op][i][j], fa[i], fb[j]);
                } else if (MATH == MATH_TF32) {
                    unsigned ta[G::MI][4], tb[G::NI][2];
#pragma unroll
                    for (int i = 0; i < G::MI; ++i)
#pragma unroll
                        for (int q = 0; q < 4; ++q)
                            ta[i][q] = __float_as_uint(tf32_round(__uint_as_float(fa[i][q])));
#pragma unroll
                    for (int j = 0; j < G::NI; ++j)
#pragma unroll
                        for (int q = 0; q < 2; ++q)
                            tb[j][q] = __float_as_uint(tf32_round(__uint_as_float(fb[j][q])));
#pragma unroll
                    for (int i = 0; i < G::MI; ++i)
#pragma unroll
                        for (int j = 0; j < G::NI; ++j) mma_tf32(acc[op][i][j], ta[i], tb[j]);
                } else {
                    // 3×TF32: the small·big and big·small terms first, then big·big.
                    unsigned big_a[G::MI][4], small_a[G::MI][4], big_b[G::NI][2],
                        small_b[G::NI][2];
#pragma unroll
                    for (int i = 0; i < G::MI; ++i)
#pragma unroll
                        for (int q = 0; q < 4; ++q) {
                            const float x = __uint_as_float(fa[i][q]), big = tf32_round(x);
                            big_a[i][q] = __float_as_uint(big);
                            small_a[i][q] = __float_as_uint(tf32_round(x - big));
                        }
#pragma unroll
                    for (int j = 0; j < G::NI; ++j)
#pragma unroll
                        for (int q = 0; q < 2; ++q) {
                            const float x = __uint_as_float(fb[j][q]), big = tf32_round(x);
                            big_b[j][q] = __float_as_uint(big);
                            small_b[j][q] = __float_as_uint(tf32_round(x - big));
                        }
#pragma unroll
                    for (int i = 0; i < G::MI; ++i)
#pragma unroll
                        for (int j = 0; j < G::NI; ++j) {
                            mma_tf32(acc[op][i][j], small_a[i], big_b[j]);
                            mma_tf32(acc[op][i][j], big_a[i], small_b[j]);
                            mma_tf32(acc[op][i][j], big_a[i], big_b[j]);
                        }
                }
            }
        }
    };

    const int ktiles = k_end > k_begin ? (k_end - k_begin + G::BK - 1) / G::BK : 0;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) load_stage(s, k_begin + s * G::BK);
        cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of stage kt have landed …
        __syncthreads();              // … everyone's have, and stage kt − 1 is free again
        const int next = kt + STAGES - 1;
        if (next < ktiles) load_stage(next % STAGES, k_begin + next * G::BK);
        cp_async_commit();
        compute_stage(kt % STAGES);
    }
    cp_async_wait<0>();

    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < G::MI; ++i)
#pragma unroll
        for (int j = 0; j < G::NI; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const long long m = m0 + wm * WM + i * 16 + g + (e >= 2 ? 8 : 0);
                const int n = n0 + wn * WN + j * 8 + 2 * t + (e & 1);
                if (m >= a.m_total || n >= n_total) continue;
                float v[NB];
#pragma unroll
                for (int op = 0; op < NB; ++op) v[op] = acc[op][i][j][e];
                epilogue(m, n, v);
            }
}
