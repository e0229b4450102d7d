// mma_epilogue.cuh — the epilogues of the tensor-core kernels (conv_mma.cu, dense_mma.cu), one
// per op of the fused formulation (docs/gpu.md §Fused relevance pass):
// - MmaFwd:  y = relu(z) (or z), z = acc + b;
// - MmaDual: a′ = relu(z) (or z) and q = a′ / stab(z⁺) (q_mode 1, the logits layer:
//   q = 1 / stab(z⁺)), z = acc₀ + b, z⁺ = acc₁ + β (β null: bias mode none);
// - MmaT:    out = acc · mul[image of row] (mul null: acc), the transposed GEMM of the backward
//   pass, rows n·K + k reading the multiplier of image n (stored as the kernel's activations).
// Values are stored as f32 or as bf16 (`bf16` true: the BF16 kernels' activations, quotients
// and relevances), at element index m·N + n.
#pragma once
#include "mma.cuh"

__device__ __forceinline__ void mma_store(void* p, long long i, float v, bool bf16) {
    if (bf16) {
        static_cast<unsigned short*>(p)[i] = (unsigned short)(pack_bf16(v, 0.0f) & 0xffffu);
    } else {
        static_cast<float*>(p)[i] = v;
    }
}

__device__ __forceinline__ float mma_load(const void* p, long long i, bool bf16) {
    return bf16 ? bf16_lo(static_cast<const unsigned short*>(p)[i])
                : static_cast<const float*>(p)[i];
}

struct MmaFwd {
    const float* bias;  // (N)
    void* y;            // (M, N)
    int n_total, relu;
    bool bf16;
    __device__ __forceinline__ void operator()(long long m, int n, const float (&v)[1]) const {
        const float z = v[0] + bias[n];
        mma_store(y, m * n_total + n, relu ? fmaxf(z, 0.0f) : z, bf16);
    }
};

struct MmaDual {
    const float* bias;  // (N): b of z
    const float* beta;  // (N) or null: β of z⁺
    void* act;          // (M, N): a′
    void* q;            // (M, N)
    int n_total, relu, q_mode, stab_kind;
    float stab_value;
    bool bf16;
    __device__ __forceinline__ void operator()(long long m, int n, const float (&v)[2]) const {
        const float z = v[0] + bias[n];
        const float zp = beta != nullptr ? v[1] + beta[n] : v[1];
        const float a = relu ? fmaxf(z, 0.0f) : z;
        const float d = stabilize(zp, stab_kind, stab_value);
        mma_store(act, m * n_total + n, a, bf16);
        mma_store(q, m * n_total + n, q_mode ? 1.0f / d : a / d, bf16);
    }
};

struct MmaT {
    const void* mul;  // (rows / heads, H, W, N) or null, bf16 when mul_bf16
    void* out;        // (rows, H, W, N)
    long long hw;
    int heads, n_total;
    bool mul_bf16, bf16;
    __device__ __forceinline__ void operator()(long long m, int n, const float (&v)[1]) const {
        float r = v[0];
        if (mul != nullptr) {
            const long long row = m / hw, pos = m - row * hw;
            r *= mma_load(mul, ((row / heads) * hw + pos) * n_total + n, mul_bf16);
        }
        mma_store(out, m * n_total + n, r, bf16);
    }
};

// The partial sums of one k slice of a split-K launch: partial[((z·NB + op)·M + m)·N + n].
template <int NB>
struct MmaPartial {
    float* partial;
    long long m_total;
    int n_total;
    __device__ __forceinline__ void operator()(long long m, int n, const float (&v)[NB]) const {
        const long long slice = (long long)blockIdx.z * NB;
#pragma unroll
        for (int op = 0; op < NB; ++op)
            partial[((slice + op) * m_total + m) * n_total + n] = v[op];
    }
};
