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
    const unsigned* __restrict__ table,  // (rows, 4): rule, target kind, class or rank, custom
                                         // row; then the custom rows (f32), `table_len` words in all
    float* __restrict__ out,           // (rows, classes)
    float* __restrict__ targets,       // (rows): the target class, as a number
    int classes, int per_image, int rows, long long table_len)
{
    __shared__ double partial[HEADS_THREADS];
    __shared__ int target;
    const int row = blockIdx.x;
    const float* z = logits + (long long)(row / per_image) * classes;
    const unsigned* spec = table + 4 * row;
    const unsigned rule = spec[0], kind = spec[1], value = spec[2], custom_row = spec[3];
    const float* custom = reinterpret_cast<const float*>(table + 4LL * rows);
    float* h = out + (long long)row * classes;

    // A row the host's checks would have refused: NaN, which the results report.
    const long long custom_rows = (table_len - 4LL * rows) / classes;
    const bool valid = rule <= HEAD_CUSTOM && (rule != HEAD_CUSTOM || custom_row < custom_rows) &&
                       ((kind == TARGET_CLASS && value < (unsigned)classes) ||
                        (kind == TARGET_RANK && value >= 1 && value <= (unsigned)classes));
    if (!valid) {
        for (int c = threadIdx.x; c < classes; c += blockDim.x) h[c] = __int_as_float(0x7fc00000);
        if (threadIdx.x == 0) targets[row] = __int_as_float(0x7fc00000);
        return;
    }

    if (kind == TARGET_CLASS) {
        target = value;
    } else {
        for (int c = threadIdx.x; c < classes; c += blockDim.x) {
            int above = 0;
            for (int a = 0; a < classes; ++a) {
                above += beats(z, a, c);
            }
            if (above == (int)value - 1) {
                target = c;  // one class has each rank
            }
        }
    }
    __syncthreads();
    const int t = target;
    const float zt = z[t];

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
        if (threadIdx.x == 0) targets[row] = (float)t;
        return;
    }

    const float others = classes > 1 ? -zt / (float)(classes - 1) : 0.0f;
    for (int c = threadIdx.x; c < classes; c += blockDim.x) {
        float v;
        switch (rule) {
            case HEAD_LRP: v = c == t ? zt : 0.0f; break;
            case HEAD_CLRP: v = c == t ? zt : others; break;
            case HEAD_ONE_HOT: v = c == t ? 1.0f : 0.0f; break;
            default: v = custom[(long long)custom_row * classes + c]; break;
        }
        h[c] = v;
    }
    if (threadIdx.x == 0) targets[row] = (float)t;
}
