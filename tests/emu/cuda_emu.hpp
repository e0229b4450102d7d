// cuda_emu.hpp — just enough of CUDA C++ to run kernels/*.cu on the CPU, for tests/cuda_emu.rs.
//
// Blocks run one after another. The threads of a block run as cooperative fibers (ucontext) on
// one OS thread: __syncthreads parks a fiber until every live fiber of the block is parked there
// (threads that returned no longer count, as on the GPU), and __shfl_xor_sync passes values
// through an exchange buffer between two yields, which is exact when a whole warp takes the same
// path (the kernels' shuffles are warp-uniform). Warps run one at a time, each as far as it can
// go before the next starts (to a barrier or its end): a warp that reads shared memory another
// warp has not written yet, for want of a barrier, reads what was there before (NaN, for the
// dynamic shared memory of mma_emu.hpp), so missing barriers show in the results. Because one block runs at a time, `__shared__`
// can be `static`. This checks indexing, bounds, tiling, barriers and epilogues of the real kernel
// sources; it says nothing about speed, and nothing about what only hardware does (memory
// ordering without barriers, occupancy, PTX itself).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct alignas(16) float4 { float x, y, z, w; };

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

using std::max;
using std::min;

enum class FiberState { Ready, AtBarrier, Done };

struct Fiber {
    ucontext_t context;
    FiberState state = FiberState::Ready;
    uint3 index;
};

struct EmuBlock {
    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    std::vector<std::unique_ptr<char[]>> stacks;
    std::vector<float> exchange;
    Fiber* current = nullptr;
    const std::function<void()>* kernel = nullptr;
};
inline EmuBlock* emu_block = nullptr;

// Back to the scheduler; the fiber resumes where it stopped.
inline void emu_yield(FiberState state) {
    Fiber* me = emu_block->current;
    me->state = state;
    swapcontext(&me->context, &emu_block->scheduler);
    threadIdx = me->index;
}

inline void __syncthreads() { emu_yield(FiberState::AtBarrier); }

inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, sizeof i);
    return i;
}

inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}

inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
    const unsigned t = threadIdx.x;
    emu_block->exchange[t] = v;
    emu_yield(FiberState::Ready);  // every lane of the warp writes …
    const float other = emu_block->exchange[(t & ~31u) | ((t & 31u) ^ (unsigned)lane_mask)];
    emu_yield(FiberState::Ready);  // … and reads before any lane writes again
    return other;
}

#include "mma_emu.hpp"

inline void emu_fiber_main() {
    (*emu_block->kernel)();
    emu_block->current->state = FiberState::Done;
    // returning resumes uc_link, the scheduler
}

// Runs `kernel()` over the grid, block after block, blockDim.x·y·z fibers per block.
// `shared_bytes`: the launch's dynamic shared memory.
template <typename F>
void emu_run(dim3 grid, dim3 block, F&& kernel, unsigned shared_bytes = 0) {
    constexpr size_t stack_bytes = 256 * 1024;
    const unsigned threads = block.x * block.y * block.z;
    EmuBlock state;
    std::function<void()> body = [&] { kernel(); };
    state.kernel = &body;
    state.fibers.resize(threads);
    state.exchange.assign(threads, 0.0f);
    for (unsigned t = 0; t < threads; ++t) state.stacks.emplace_back(new char[stack_bytes]);
    emu_block = &state;
    emu_mma.dynamic_bytes = shared_bytes;
    blockDim = block;
    gridDim = grid;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = {bx, by, bz};
                emu_block_start(threads);
                for (unsigned t = 0; t < threads; ++t) {
                    Fiber& f = state.fibers[t];
                    f.state = FiberState::Ready;
                    f.index = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                    getcontext(&f.context);
                    f.context.uc_stack.ss_sp = state.stacks[t].get();
                    f.context.uc_stack.ss_size = stack_bytes;
                    f.context.uc_link = &state.scheduler;
                    makecontext(&f.context, emu_fiber_main, 0);
                }
                for (;;) {
                    // Each warp in turn, round after round, until none of its fibers is ready.
                    for (unsigned w0 = 0; w0 < threads; w0 += 32) {
                        const unsigned w1 = std::min(threads, w0 + 32);
                        for (bool ran = true; ran;) {
                            ran = false;
                            for (unsigned t = w0; t < w1; ++t) {
                                Fiber& f = state.fibers[t];
                                if (f.state != FiberState::Ready) continue;
                                ran = true;
                                state.current = &f;
                                threadIdx = f.index;
                                swapcontext(&state.scheduler, &f.context);
                            }
                        }
                    }
                    bool waiting = false;
                    for (auto& f : state.fibers) {
                        if (f.state == FiberState::AtBarrier) {
                            f.state = FiberState::Ready;
                            waiting = true;
                        }
                    }
                    if (!waiting) break;  // every fiber is done
                }
            }
    emu_block = nullptr;
}
