// mma_emu.hpp — the warp-level tensor-core instructions of kernels/mma.cuh on the CPU, for the
// fiber emulator (cuda_emu.hpp includes it; kernels see it through SGLRP_EMU).
//
// - mma.sync m16n8k8 tf32 and m16n8k16 bf16: every lane hands in its fragment registers, and
//   after one round of the warp every lane computes its own accumulator elements from the whole
//   warp's registers, with the per-lane layouts of the PTX ISA ("Matrix fragments for
//   mma.m16n8k8" / "mma.m16n8k16"). tf32 operands are read as the hardware reads them: only the
//   top 19 bits (cvt.rna.tf32.f32 is the caller's job); products are exact in f64 and each
//   accumulator element is rounded to f32 once, so integer-valued tests are exact in any order.
// - ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane 8·j + r gives the address of row r of
//   matrix j; lane l receives, per matrix, the 32-bit word l % 4 of row l / 4 (or, .trans, the
//   b16 elements (2·(l % 4), l / 4) and (2·(l % 4) + 1, l / 4) of the matrix).
// - cp.async.cg 16 B with zero fill, commit_group, wait_group N: a copy is deferred to the
//   wait_group that retires its group, and its destination holds NaN until then, so a stage
//   read too early shows in the results.
// - Dynamic shared memory: the launch's bytes, filled with NaN before every block.
#pragma once
#include <cstdint>

#define SGLRP_EMU 1

inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// The bits a poisoned word holds: NaN as one f32 and as two bf16 halves.
constexpr unsigned EMU_POISON = 0x7fc07fc0u;

struct EmuCopy {
    unsigned char* dst;
    unsigned char bytes[16];
};

struct EmuLane {
    unsigned regs[6];
    const void* addr;
    std::vector<EmuCopy> open;                 // cp.async since the last commit_group
    std::vector<std::vector<EmuCopy>> groups;  // committed, oldest first
};

struct EmuMmaState {
    std::vector<EmuLane> lanes;
    std::vector<unsigned> dynamic_smem;  // words
    unsigned dynamic_bytes = 0;
};
inline EmuMmaState emu_mma;

inline unsigned emu_tid() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
inline EmuLane& emu_lane(unsigned tid) { return emu_mma.lanes[tid]; }

// Called by emu_run before every block: fresh lanes, poisoned dynamic shared memory.
inline void emu_block_start(unsigned threads) {
    emu_mma.lanes.assign(threads, EmuLane{});
    emu_mma.dynamic_smem.assign((emu_mma.dynamic_bytes + 3) / 4 + 1, EMU_POISON);
}

inline unsigned char* emu_dynamic_smem() {
    return reinterpret_cast<unsigned char*>(emu_mma.dynamic_smem.data());
}

// One round of the warp: every lane has published before any lane reads, and every lane has
// read before any lane publishes again (the warp's lanes take the same path).
inline void emu_warp_round() { emu_yield(FiberState::Ready); }

inline float emu_tf32_operand(unsigned bits) { return __uint_as_float(bits & 0xffffe000u); }
inline float emu_bf16(unsigned bits, int high) {
    return __uint_as_float(high ? (bits & 0xffff0000u) : (bits << 16));
}

// d += A(16×k) · B(k×8) for the lane's four accumulators; `a_elem(lane regs, r, c)` and
// `b_elem(k, n)` read the warp's published fragments.
template <typename A, typename B>
inline void emu_mma_finish(float (&d)[4], int k_total, const A& a_elem, const B& b_elem) {
    const unsigned lane = emu_tid() & 31u, base = emu_tid() & ~31u;
    const int g = (int)lane / 4, t = (int)lane % 4;
    float out[4];
    for (int e = 0; e < 4; ++e) {
        const int r = g + (e >= 2 ? 8 : 0);
        const int c = 2 * t + (e & 1);
        double acc = 0.0;
        for (int k = 0; k < k_total; ++k) acc += (double)a_elem(base, r, k) * b_elem(base, k, c);
        out[e] = (float)((double)d[e] + acc);
    }
    emu_warp_round();  // every lane read the fragments before the warp's next mma
    for (int e = 0; e < 4; ++e) d[e] = out[e];
}

inline void mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    EmuLane& me = emu_lane(emu_tid());
    for (int i = 0; i < 4; ++i) me.regs[i] = a[i];
    me.regs[4] = b[0];
    me.regs[5] = b[1];
    emu_warp_round();
    // A: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); B: b0 (k=t, n=g), b1 (k=t+4, n=g).
    auto a_elem = [](unsigned base, int r, int c) {
        const int reg = (r >= 8 ? 1 : 0) + (c >= 4 ? 2 : 0);
        return emu_tf32_operand(emu_lane(base + (r % 8) * 4 + c % 4).regs[reg]);
    };
    auto b_elem = [](unsigned base, int k, int n) {
        return emu_tf32_operand(emu_lane(base + n * 4 + k % 4).regs[4 + k / 4]);
    };
    emu_mma_finish(d, 8, a_elem, b_elem);
}

inline void mma_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    EmuLane& me = emu_lane(emu_tid());
    for (int i = 0; i < 4; ++i) me.regs[i] = a[i];
    me.regs[4] = b[0];
    me.regs[5] = b[1];
    emu_warp_round();
    // A: a0 (g, 2t..2t+1), a1 (g+8, …), a2 (g, 2t+8..), a3 (g+8, 2t+8..), the lower column in
    // the low half; B: b0 (k = 2t..2t+1, n = g), b1 (k = 2t+8.., n = g).
    auto a_elem = [](unsigned base, int r, int c) {
        const int reg = (r >= 8 ? 1 : 0) + (c >= 8 ? 2 : 0);
        return emu_bf16(emu_lane(base + (r % 8) * 4 + (c % 8) / 2).regs[reg], c & 1);
    };
    auto b_elem = [](unsigned base, int k, int n) {
        return emu_bf16(emu_lane(base + n * 4 + (k % 8) / 2).regs[4 + k / 8], k & 1);
    };
    emu_mma_finish(d, 16, a_elem, b_elem);
}

inline void emu_ldmatrix(unsigned (&r)[4], const void* row, bool trans) {
    const unsigned tid = emu_tid(), lane = tid & 31u, base = tid & ~31u;
    emu_lane(tid).addr = row;
    emu_warp_round();
    unsigned got[4];
    for (int j = 0; j < 4; ++j) {
        if (!trans) {
            const auto* p = static_cast<const unsigned*>(emu_lane(base + j * 8 + lane / 4).addr);
            got[j] = p[lane % 4];
        } else {
            const int col = (int)lane / 4;
            unsigned w = 0;
            for (int h = 0; h < 2; ++h) {
                const int src_row = 2 * ((int)lane % 4) + h;
                const auto* p =
                    static_cast<const uint16_t*>(emu_lane(base + j * 8 + src_row).addr);
                w |= (unsigned)p[col] << (16 * h);
            }
            got[j] = w;
        }
    }
    emu_warp_round();
    for (int j = 0; j < 4; ++j) r[j] = got[j];
}

inline void ldmatrix_x4(unsigned (&r)[4], const void* row) { emu_ldmatrix(r, row, false); }
inline void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) { emu_ldmatrix(r, row, true); }

inline void cp_async16(void* smem, const void* gmem, bool valid) {
    EmuCopy c;
    c.dst = static_cast<unsigned char*>(smem);
    if (valid) {
        std::memcpy(c.bytes, gmem, 16);
    } else {
        std::memset(c.bytes, 0, 16);  // src-size 0: sixteen bytes of zeros
    }
    for (int i = 0; i < 4; ++i) std::memcpy(c.dst + 4 * i, &EMU_POISON, 4);
    emu_lane(emu_tid()).open.push_back(c);
}

inline void cp_async_commit() {
    EmuLane& me = emu_lane(emu_tid());
    me.groups.push_back(std::move(me.open));
    me.open.clear();
}

template <int N>
inline void cp_async_wait() {
    EmuLane& me = emu_lane(emu_tid());
    while (me.groups.size() > (size_t)N) {
        for (const EmuCopy& c : me.groups.front()) std::memcpy(c.dst, c.bytes, 16);
        me.groups.erase(me.groups.begin());
    }
}

// cvt.rna.tf32.f32: to 10 mantissa bits, to nearest, ties away from zero.
inline float tf32_round(float x) {
    const unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;  // inf, NaN
    return __uint_as_float((u + 0x1000u) & 0xffffe000u);
}

// cvt.rn.bf16x2.f32: `lo` to the low half, `hi` to the high half, to nearest even.
inline unsigned emu_bf16_bits(float x) {
    const unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;  // NaN
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
inline unsigned pack_bf16(float lo, float hi) {
    return emu_bf16_bits(lo) | (emu_bf16_bits(hi) << 16);
}
