// common.cuh — helpers shared by every kernel: the stabiliser of docs/method.md §Rules and warp reductions.
//
// The tile sizes (CONV_BM, DENSE_ROWS, …) arrive as -D defines from src/backend/cuda/config.rs;
// nothing here has a default, so a kernel built without them fails to compile.
#pragma once

// How a z⁺ denominator is kept away from zero (Stabilizer in src/backend/mod.rs):
// kind 0: d + ε·sign(d) with sign(0) = +1 (Zennit's stabilize); kind 1: exact zeros become ε.
#define STAB_EPSILON 0
#define STAB_ZERO_TO 1

__device__ __forceinline__ float stabilize(float d, int kind, float value) {
    if (kind == STAB_EPSILON) {
        return d >= 0.0f ? d + value : d - value;
    }
    return d == 0.0f ? value : d;
}

// Sum over the 32 lanes of a warp; every lane gets the total. All 32 lanes must call it.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}
