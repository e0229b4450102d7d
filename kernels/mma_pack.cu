// mma_pack.cu — the storage of the tensor-core kernels (src/backend/cuda/mma.rs): their weight
// layouts, packed on the device from a prepared layer, and conversions between f32 and bf16
// buffers for the ops that read f32. CPU twins: the host `encode` / `decode` of mma.rs (the
// emulator tests compare them).
//
// - mma_pack: dst, n rows of kp values (zeros past k), from src (n, k) (n_major) or (k, n);
//   bf16: two values per word, the even one in the low half (cvt.rn, to nearest even).
// - to_bf16 / to_f32: len values between one f32 per word and bf16 pairs.
// Grid-stride over destination words.
#include "mma.cuh"

extern "C" __global__ void mma_pack(
    const float* __restrict__ src,  // (n, k) or (k, n)
    unsigned* __restrict__ dst,     // (n, kp) values, in words
    int n, int k, int kp, int n_major, int bf16)
{
    const long long per_row = bf16 ? kp / 2 : kp;
    const long long total = (long long)n * per_row;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long row = e / per_row;
        const long long first = (e - row * per_row) * (bf16 ? 2 : 1);
        // Two scalars, not an indexed array: an array indexed in a loop lives on the stack.
        const long long k1 = first + 1;
        const float lo = first >= k ? 0.0f : n_major ? src[row * k + first] : src[first * n + row];
        const float hi = !bf16 || k1 >= k ? 0.0f : n_major ? src[row * k + k1] : src[k1 * n + row];
        dst[e] = bf16 ? pack_bf16(lo, hi) : __float_as_uint(lo);
    }
}

extern "C" __global__ void to_bf16(
    const float* __restrict__ src,  // (len)
    unsigned* __restrict__ dst,     // (⌈len / 2⌉) words
    long long len)
{
    const long long words = (len + 1) / 2;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < words;
         e += (long long)gridDim.x * blockDim.x) {
        const float hi = 2 * e + 1 < len ? src[2 * e + 1] : 0.0f;
        dst[e] = pack_bf16(src[2 * e], hi);
    }
}

extern "C" __global__ void to_f32(
    const unsigned* __restrict__ src,  // (⌈len / 2⌉) words
    float* __restrict__ dst,           // (len)
    long long len)
{
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < len;
         e += (long long)gridDim.x * blockDim.x) {
        const unsigned w = src[e / 2];
        dst[e] = (e % 2 == 0) ? bf16_lo(w) : bf16_hi(w);
    }
}
