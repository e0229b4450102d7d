// mma.cuh — the tensor-core primitives of the *_mma kernels, one thin layer: inline PTX on the
// device, and on the CPU (the test emulator defines SGLRP_EMU) the functions of
// tests/emu/mma_emu.hpp with the same names, per-lane fragment layouts and rounding.
//
// - mma_tf32(d, a, b): d += A·B, mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32; the
//   operands must already be tf32 (tf32_round).
// - mma_bf16(d, a, b): d += A·B, mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32.
// - ldmatrix_x4[_trans](r, row): ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16; lane
//   8·j + i gives the address of row i of matrix j.
// - cp_async16(dst, src, valid): cp.async.cg.shared.global, 16 bytes, zeros when !valid;
//   cp_async_commit(), cp_async_wait<N>(): commit_group / wait_group N.
// - tf32_round(x): cvt.rna.tf32.f32 (to nearest, ties away from zero).
// - pack_bf16(lo, hi): cvt.rn.bf16x2.f32 (to nearest even), lo in the low half;
//   bf16_lo/bf16_hi(word): a half back to f32 (exact).
// - mma_dynamic_smem(): the launch's dynamic shared memory (16-byte aligned).
// Fragment layouts (g = lane / 4, t = lane % 4): tf32 A a0 (g, t) a1 (g+8, t) a2 (g, t+4)
// a3 (g+8, t+4), B b0 (k=t, n=g) b1 (k=t+4, n=g); bf16 the same in pairs of k (2t, 2t+1, and +8);
// C c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1).
#pragma once
#include "common.cuh"

#ifndef SGLRP_EMU

__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mma_tf32(float (&d)[4], const unsigned (&a)[4],
                                         const unsigned (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const unsigned (&a)[4],
                                         const unsigned (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)),
                 "l"(gmem), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ float tf32_round(float x) {
    unsigned u;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(u) : "f"(x));
    return __uint_as_float(u);
}

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    unsigned u;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(u) : "f"(hi), "f"(lo));
    return u;
}

__device__ __forceinline__ unsigned char* mma_dynamic_smem() {
    extern __shared__ __align__(16) unsigned char mma_smem[];
    return mma_smem;
}

#else

__device__ __forceinline__ unsigned char* mma_dynamic_smem() { return emu_dynamic_smem(); }

#endif

__device__ __forceinline__ float bf16_lo(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(unsigned w) { return __uint_as_float(w & 0xffff0000u); }
