// heads.cu — the output relevance put on the logits (docs/method.md §Heads), so a pass goes
// from the forward to the backward without the host (CPU twin: src/backend/cpu/heads.rs).
//
// Blocks: one per head row (head r % K of image r / K); the threads stride over the classes.
// A rank target is the class that exactly k − 1 classes beat, in Rust's total_cmp order (NaN
// above every number) with ties to the lower index: O(classes²) comparisons, spread over the
// block, cheaper than a sort for a thousand classes. The softmax is taken in f64.
#include "common.cuh"

#define HEAD_LRP 0
#define HEAD_CLRP 1
#define HEAD_SGLRP 2
#define HEAD_ONE_HOT 3
#define HEAD_CUSTOM 4

#define TARGET_CLASS 0
#define TARGET_RANK 1

// total_cmp's key: the bits of a float as a signed integer, the magnitude bits flipped for
// negative numbers, so that integer order is total_cmp order.
__device__ __forceinline__ int order_key(float v) {
    const int i = __float_as_int(v);
    return i ^ (int)(((unsigned)(i >> 31)) >> 1);
}

// Whether class a ranks above class c.
__device__ __forceinline__ bool beats(const float* z, int a, int c) {
    const int ka = order_key(z[a]), kc = order_key(z[c]);
    return ka > kc || (ka == kc && a < c);
}

extern "C" __global__ void heads(
    const float* __restrict__ logits,  // (N, classes)
    const int* __restrict__ specs,     // (N·K, 4): rule, target kind, class or rank, custom row
    const float* __restrict__ custom,  // (custom rows, classes)
    float* __restrict__ out,           // (N·K, classes)
    unsigned* __restrict__ targets,    // (N·K)
    int classes, int per_image)
{
    __shared__ double partial[HEADS_THREADS];
    __shared__ int target;
    const int row = blockIdx.x;
    const float* z = logits + (long long)(row / per_image) * classes;
    const int* spec = specs + 4 * row;
    const int rule = spec[0], kind = spec[1], value = spec[2];

    if (kind == TARGET_CLASS) {
        target = value;
    } else {
        for (int c = threadIdx.x; c < classes; c += blockDim.x) {
            int above = 0;
            for (int a = 0; a < classes; ++a) {
                above += beats(z, a, c);
            }
            if (above == value - 1) {
                target = c;  // one class has each rank
            }
        }
    }
    __syncthreads();
    const int t = target;
    const float zt = z[t];
    float* h = out + (long long)row * classes;

    if (rule == HEAD_SGLRP) {
        // max, then Σ exp(z − max) in f64, as the twin does (its sum order differs only in
        // the last bits of a double).
        float m = z[0];  // fmaxf skips NaN, as the twin's f32::max does
        for (int c = threadIdx.x; c < classes; c += blockDim.x) {
            m = fmaxf(m, z[c]);
        }
        partial[threadIdx.x] = m;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) {
                partial[threadIdx.x] = fmax(partial[threadIdx.x], partial[threadIdx.x + s]);
            }
            __syncthreads();
        }
        const double max = partial[0];
        __syncthreads();
        double sum = 0.0;
        for (int c = threadIdx.x; c < classes; c += blockDim.x) {
            sum += exp((double)z[c] - max);
        }
        partial[threadIdx.x] = sum;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) {
                partial[threadIdx.x] += partial[threadIdx.x + s];
            }
            __syncthreads();
        }
        const double total = partial[0];
        const float yt = (float)(exp((double)zt - max) / total);
        for (int c = threadIdx.x; c < classes; c += blockDim.x) {
            const float yc = (float)(exp((double)z[c] - max) / total);
            h[c] = c == t ? yt * (1.0f - yt) : -yt * yc;
        }
        if (threadIdx.x == 0) targets[row] = (unsigned)t;
        return;
    }

    const float others = classes > 1 ? -zt / (float)(classes - 1) : 0.0f;
    for (int c = threadIdx.x; c < classes; c += blockDim.x) {
        float v;
        switch (rule) {
            case HEAD_LRP: v = c == t ? zt : 0.0f; break;
            case HEAD_CLRP: v = c == t ? zt : others; break;
            case HEAD_ONE_HOT: v = c == t ? 1.0f : 0.0f; break;
            default: v = custom[(long long)spec[3] * classes + c]; break;
        }
        h[c] = v;
    }
    if (threadIdx.x == 0) targets[row] = (unsigned)t;
}
