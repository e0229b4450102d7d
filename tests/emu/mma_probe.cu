// mma_probe.cu — one-warp kernels that drive the primitives of kernels/mma.cuh, for
// tests/mma_emu.rs to compare with a plain matrix product. Compiled for the emulator only.
//
// The fragments are built straight from the PTX ISA's layouts (probe_mma_*) or through
// ldmatrix from shared memory (probe_ldmatrix_*), so that the emulated mma, the emulated
// ldmatrix and the layouts the kernels assume are checked against each other and against the
// product.
#include "mma.cuh"

// D (16×8) = C + A (16×8) · B (8×8); A row-major, B[k][n], C and D row-major; operands rounded to
// tf32 first. One warp.
extern "C" __global__ void probe_mma_tf32(const float* a, const float* b, const float* c,
                                          float* d) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const unsigned fa[4] = {
        __float_as_uint(tf32_round(a[g * 8 + t])), __float_as_uint(tf32_round(a[(g + 8) * 8 + t])),
        __float_as_uint(tf32_round(a[g * 8 + t + 4])),
        __float_as_uint(tf32_round(a[(g + 8) * 8 + t + 4]))};
    const unsigned fb[2] = {__float_as_uint(tf32_round(b[t * 8 + g])),
                            __float_as_uint(tf32_round(b[(t + 4) * 8 + g]))};
    float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                    c[(g + 8) * 8 + 2 * t + 1]};
    mma_tf32(acc, fa, fb);
    d[g * 8 + 2 * t] = acc[0];
    d[g * 8 + 2 * t + 1] = acc[1];
    d[(g + 8) * 8 + 2 * t] = acc[2];
    d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// D (16×8) = C + A (16×16) · B (16×8), operands rounded to bf16 first. One warp.
extern "C" __global__ void probe_mma_bf16(const float* a, const float* b, const float* c,
                                          float* d) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    auto pa = [&](int r, int k) { return pack_bf16(a[r * 16 + k], a[r * 16 + k + 1]); };
    auto pb = [&](int k, int n) { return pack_bf16(b[k * 8 + n], b[(k + 1) * 8 + n]); };
    const unsigned fa[4] = {pa(g, 2 * t), pa(g + 8, 2 * t), pa(g, 2 * t + 8), pa(g + 8, 2 * t + 8)};
    const unsigned fb[2] = {pb(2 * t, g), pb(2 * t + 8, g)};
    float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                    c[(g + 8) * 8 + 2 * t + 1]};
    mma_bf16(acc, fa, fb);
    d[g * 8 + 2 * t] = acc[0];
    d[g * 8 + 2 * t + 1] = acc[1];
    d[(g + 8) * 8 + 2 * t] = acc[2];
    d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// D (16×16) = A (16×16) · B (16×16) in bf16 through shared memory and ldmatrix: A row-major,
// B given as B[k][n]. With trans = 0 B is stored n-major (Bs[n][k]) and read by ldmatrix; with
// trans = 1 it is stored k-major (Bs[k][n]) and read by ldmatrix.trans. One warp, two n8 tiles.
extern "C" __global__ void probe_ldmatrix_bf16(const float* a, const float* b, float* d,
                                               int trans) {
    __shared__ __align__(16) unsigned short As[16][24];
    __shared__ __align__(16) unsigned short Bs[16][24];
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (int e = lane; e < 256; e += 32) {
        const int r = e / 16, c = e % 16;
        As[r][c] = (unsigned short)pack_bf16(a[e], 0.0f);
        // b[e] is B[r][c] = (k = r, n = c)
        if (trans) {
            Bs[r][c] = (unsigned short)pack_bf16(b[e], 0.0f);
        } else {
            Bs[c][r] = (unsigned short)pack_bf16(b[e], 0.0f);
        }
    }
    __syncthreads();
    const int j = lane / 8, i = lane % 8;
    unsigned fa[4], fb[4];
    ldmatrix_x4(fa, &As[(j & 1) * 8 + i][(j >> 1) * 8]);
    if (trans) {
        // matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)
        ldmatrix_x4_trans(fb, &Bs[(j & 1) * 8 + i][(j >> 1) * 8]);
    } else {
        // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
        ldmatrix_x4(fb, &Bs[(j >> 1) * 8 + i][(j & 1) * 8]);
    }
    for (int nt = 0; nt < 2; ++nt) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const unsigned b2[2] = {fb[2 * nt], fb[2 * nt + 1]};
        mma_bf16(acc, fa, b2);
        const int n = nt * 8 + 2 * t;
        d[g * 16 + n] = acc[0];
        d[g * 16 + n + 1] = acc[1];
        d[(g + 8) * 16 + n] = acc[2];
        d[(g + 8) * 16 + n + 1] = acc[3];
    }
}

// D (16×16) = A (16×8) · B (8×16) in tf32 through shared memory and ldmatrix (32-bit words as
// pairs of b16): A row-major, B stored n-major (Bs[n][k]). One warp, two n8 tiles.
extern "C" __global__ void probe_ldmatrix_tf32(const float* a, const float* b, float* d) {
    __shared__ __align__(16) float As[16][12];
    __shared__ __align__(16) float Bs[16][12];
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (int e = lane; e < 128; e += 32) {
        As[e / 8][e % 8] = a[e];
        Bs[e % 16][e / 16] = b[e];  // b[e] = B[k = e / 16][n = e % 16]
    }
    __syncthreads();
    const int j = lane / 8, i = lane % 8;
    unsigned fa[4], fb[4];
    ldmatrix_x4(fa, &As[(j & 1) * 8 + i][(j >> 1) * 4]);
    ldmatrix_x4(fb, &Bs[(j >> 1) * 8 + i][(j & 1) * 4]);
    for (int r = 0; r < 4; ++r) {
        fa[r] = __float_as_uint(tf32_round(__uint_as_float(fa[r])));
        fb[r] = __float_as_uint(tf32_round(__uint_as_float(fb[r])));
    }
    for (int nt = 0; nt < 2; ++nt) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const unsigned b2[2] = {fb[2 * nt], fb[2 * nt + 1]};
        mma_tf32(acc, fa, b2);
        const int n = nt * 8 + 2 * t;
        d[g * 16 + n] = acc[0];
        d[g * 16 + n + 1] = acc[1];
        d[(g + 8) * 16 + n] = acc[2];
        d[(g + 8) * 16 + n + 1] = acc[3];
    }
}

// cp.async: thread i copies src[4i .. 4i+4) into shared memory in group 0 and src[128 + 4i ..)
// in group 1 (zeros where i is odd: src-size 0), and records what shared memory holds at three
// points: out[0 .. 256) before any wait, out[256 .. 512) after wait_group 1, out[512 .. 768)
// after wait_group 0 (each thread its own words). 32 threads.
extern "C" __global__ void probe_cp_async(const float* src, float* out) {
    __shared__ __align__(16) float s[256];
    const int i = threadIdx.x;
    cp_async16(&s[4 * i], &src[4 * i], true);
    cp_async_commit();
    cp_async16(&s[128 + 4 * i], &src[128 + 4 * i], i % 2 == 0);
    cp_async_commit();
    auto record = [&](int at) {
        for (int e = 0; e < 4; ++e) {
            out[at + 4 * i + e] = s[4 * i + e];
            out[at + 128 + 4 * i + e] = s[128 + 4 * i + e];
        }
    };
    record(0);
    cp_async_wait<1>();
    record(256);
    cp_async_wait<0>();
    record(512);
}

// y = tf32_round(x) and the two bf16 halves of pack_bf16(x, -x), elementwise.
extern "C" __global__ void probe_round(const float* x, float* tf32, float* bf16, int n) {
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        tf32[e] = tf32_round(x[e]);
        const unsigned w = pack_bf16(x[e], -x[e]);
        bf16[2 * e] = bf16_lo(w);
        bf16[2 * e + 1] = bf16_hi(w);
    }
}
