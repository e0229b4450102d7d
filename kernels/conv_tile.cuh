// conv_tile.cuh — the implicit-GEMM main loop shared by conv3x3_forward, conv_dual, conv_quotient
// and conv_transpose, and the direct loop of their `_v1` checkers.
//
// A 3×3, stride-1, pad-1 correlation over `rows` maps of H×W as a matrix product
//   C (M × N) = A (M × K) · B (K × N),  M = rows·H·W positions, N = output channels,
//   K = 9·Cin taps, k = (ky·3 + kx)·Cin + ci,
//   A[m][k] = x[img][y+ky−1][x+kx−1][ci] (zero outside the map), B[k][n] = w[k·N + n].
// Threads: a block of CONV_THREADS computes one CONV_BM × CONV_BN tile of C; thread (ty, tx)
// owns rows ty·CONV_TM … and columns tx·CONV_TN …. The reduction steps by CONV_BK: each thread
// loads CONV_BM·CONV_BK/CONV_THREADS values of A (one k, several m: consecutive threads read
// consecutive channels) and as many of B (one n, several k: consecutive threads read consecutive
// channels) into registers, stores them in shared memory (A transposed, k-major, so a thread
// reads its CONV_TM rows as one float4), and prefetches the next step's values while it
// multiplies. The tiles in shared memory are the operands an MMA (tf32/bf16 tensor cores)
// version will consume unchanged. The epilogue functor gets (m, n, value) for every C element in
// range; it is where bias + ReLU, the z⁺ division, or the multiplication by the activation live.
#pragma once
#include "common.cuh"

// Row padding of the transposed A tile: keeps rows 16-byte aligned and spreads the transposed
// stores over more banks.
#define CONV_APAD 4

// The NB weight matrices of one pass over A (the fused forward reads W and W⁺: NB = 2).
template <int NB>
struct ConvWeights {
    const float* w[NB];  // each (9·Cin, Cout)
};

// The main loop over NB weight matrices at once: every A tile is loaded once and multiplied by
// NB B tiles; the epilogue gets (m, n, acc) with acc[b] the element of product b.
template <int NB, typename Epilogue>
__device__ __forceinline__ void conv_tile_sets(
    const float* __restrict__ x,  // (rows, H, W, Cin)
    const ConvWeights<NB>& wk,
    int rows, int h, int w, int cin, int cout, const Epilogue& epilogue)
{
    constexpr int A_LOADS = CONV_BM * CONV_BK / CONV_THREADS;
    constexpr int A_STEP = CONV_THREADS / CONV_BK;
    constexpr int B_LOADS = CONV_BK * CONV_BN / CONV_THREADS;
    constexpr int B_STEP = CONV_THREADS / CONV_BN;
    __shared__ __align__(16) float As[CONV_BK][CONV_BM + CONV_APAD];
    __shared__ __align__(16) float Bs[NB][CONV_BK][CONV_BN];

    const int tid = threadIdx.x;
    const long long hw = (long long)h * w;
    const long long m_total = (long long)rows * hw;
    const int k_total = 9 * cin;
    const long long m0 = (long long)blockIdx.x * CONV_BM;
    const int n0 = blockIdx.y * CONV_BN;

    // The positions whose A values this thread loads: image offset and (y, x) of each.
    const int a_k = tid % CONV_BK;
    const int a_m = tid / CONV_BK;
    long long a_base[A_LOADS];
    int a_y[A_LOADS], a_x[A_LOADS];
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
        const long long m = m0 + a_m + i * A_STEP;
        if (m < m_total) {
            const long long img = m / hw;
            const int pos = (int)(m - img * hw);
            a_y[i] = pos / w;
            a_x[i] = pos - a_y[i] * w;
            a_base[i] = (m) * cin;  // == ((img·H + y)·W + x)·Cin
        } else {
            a_y[i] = -4;  // every tap falls outside the map
            a_x[i] = -4;
            a_base[i] = 0;
        }
    }
    const int b_n = tid % CONV_BN;
    const int b_k = tid / CONV_BN;

    float a_reg[A_LOADS], b_reg[NB][B_LOADS];
    float acc[NB][CONV_TM][CONV_TN];
#pragma unroll
    for (int b = 0; b < NB; ++b) {
#pragma unroll
        for (int i = 0; i < CONV_TM; ++i) {
#pragma unroll
            for (int j = 0; j < CONV_TN; ++j) acc[b][i][j] = 0.0f;
        }
    }

    // Loads the A and B values of the reduction step starting at k0 into registers.
    auto load = [&](int k0) {
        const int k = k0 + a_k;
        const bool k_ok = k < k_total;
        const int tap = k_ok ? k / cin : 0;
        const int ci = k - tap * cin;
        const int dy = tap / 3 - 1;
        const int dx = tap - (tap / 3) * 3 - 1;
        const long long offset = ((long long)dy * w + dx) * cin + ci;
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            const int yy = a_y[i] + dy;
            const int xx = a_x[i] + dx;
            const bool inside = k_ok && yy >= 0 && yy < h && xx >= 0 && xx < w;
            a_reg[i] = inside ? x[a_base[i] + offset] : 0.0f;
        }
        const int n = n0 + b_n;
#pragma unroll
        for (int j = 0; j < B_LOADS; ++j) {
            const int kk = k0 + b_k + j * B_STEP;
            const bool ok = kk < k_total && n < cout;
#pragma unroll
            for (int b = 0; b < NB; ++b) {
                b_reg[b][j] = ok ? wk.w[b][(long long)kk * cout + n] : 0.0f;
            }
        }
    };

    const int tx = tid % (CONV_BN / CONV_TN);
    const int ty = tid / (CONV_BN / CONV_TN);
    load(0);
    for (int k0 = 0; k0 < k_total; k0 += CONV_BK) {
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i) As[a_k][a_m + i * A_STEP] = a_reg[i];
#pragma unroll
        for (int b = 0; b < NB; ++b) {
#pragma unroll
            for (int j = 0; j < B_LOADS; ++j) Bs[b][b_k + j * B_STEP][b_n] = b_reg[b][j];
        }
        __syncthreads();
        if (k0 + CONV_BK < k_total) load(k0 + CONV_BK);
#pragma unroll
        for (int kk = 0; kk < CONV_BK; ++kk) {
            const float4 av = *reinterpret_cast<const float4*>(&As[kk][ty * CONV_TM]);
            const float a[4] = {av.x, av.y, av.z, av.w};
#pragma unroll
            for (int s = 0; s < NB; ++s) {
                const float4 bv = *reinterpret_cast<const float4*>(&Bs[s][kk][tx * CONV_TN]);
                const float b[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
                for (int i = 0; i < CONV_TM; ++i) {
#pragma unroll
                    for (int j = 0; j < CONV_TN; ++j) {
                        acc[s][i][j] = fmaf(a[i], b[j], acc[s][i][j]);
                    }
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < CONV_TM; ++i) {
        const long long m = m0 + ty * CONV_TM + i;
        if (m >= m_total) continue;
#pragma unroll
        for (int j = 0; j < CONV_TN; ++j) {
            const int n = n0 + tx * CONV_TN + j;
            if (n >= cout) continue;
            float out[NB];
#pragma unroll
            for (int b = 0; b < NB; ++b) out[b] = acc[b][i][j];
            epilogue(m, n, out);
        }
    }
}

// The main loop over one weight matrix; the epilogue gets (m, n, value).
template <typename Epilogue>
__device__ __forceinline__ void conv_tile(
    const float* __restrict__ x,  // (rows, H, W, Cin)
    const float* __restrict__ wk, // (9·Cin, Cout)
    int rows, int h, int w, int cin, int cout, const Epilogue& epilogue)
{
    conv_tile_sets<1>(x, ConvWeights<1>{{wk}}, rows, h, w, cin, cout,
                      [&](long long m, int n, const float (&acc)[1]) { epilogue(m, n, acc[0]); });
}

// The direct loop of one output element (m, n): the `_v1` checkers and the reference the tiled
// kernels are benchmarked against. One thread per output element.
__device__ __forceinline__ float conv_direct(
    const float* __restrict__ x,  // (rows, H, W, Cin)
    const float* __restrict__ wk, // (9·Cin, Cout)
    int h, int w, int cin, int cout, long long m, int n)
{
    const long long hw = (long long)h * w;
    const long long img = m / hw;
    const int pos = (int)(m - img * hw);
    const int y = pos / w;
    const int xo = pos - y * w;
    float acc = 0.0f;
    for (int tap = 0; tap < 9; ++tap) {
        const int yy = y + tap / 3 - 1;
        const int xx = xo + tap % 3 - 1;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const float* px = x + ((img * h + yy) * w + xx) * cin;
        const float* wt = wk + (long long)tap * cin * cout + n;
        for (int ci = 0; ci < cin; ++ci) acc = fmaf(px[ci], wt[(long long)ci * cout], acc);
    }
    return acc;
}
