// kernels.cpp — every kernels/*.cu compiled for the CPU through cuda_emu.hpp, behind one C entry
// point with cuLaunchKernel's calling convention: a kernel name and an array of pointers to the
// arguments. tests/common/emu.rs loads it and implements sglrp's `Device` trait with it.
#include "cuda_emu.hpp"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include "conv3x3_forward.cu"
#include "conv_dual.cu"
#include "conv_mma.cu"
#include "conv_quotient.cu"
#include "conv_transpose.cu"
#include "conv_transpose_narrow.cu"
#include "dense_dual.cu"
#include "dense_forward.cu"
#include "dense_mma.cu"
#include "dense_quotient.cu"
#include "dense_transpose.cu"
#include "heads.cu"
#include "heatmap.cu"
#include "maxpool_forward.cu"
#include "maxpool_route.cu"
#include "mma_pack.cu"
#include "prepare.cu"
#include "relu_backward.cu"
#include "scale_heads.cu"
#include "zbox.cu"

#include "mma_probe.cu"

template <typename... A, std::size_t... I>
void emu_call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <typename... A>
void emu_launch_kernel(void (*f)(A...), dim3 grid, dim3 block, unsigned shared, void** args) {
    emu_run(grid, block, [&] { emu_call(f, args, std::index_sequence_for<A...>{}); }, shared);
}

// Null `args` only asks whether the kernel exists.
#define KERNEL(name)                                                           \
    if (std::strcmp(kernel, #name) == 0) {                                     \
        if (args != nullptr) emu_launch_kernel(name, grid, block, shared, args); \
        return 0;                                                              \
    }

// One launch at a time: `__shared__` arrays are statics, shared by every launch of a kernel, and
// the test harness runs tests on several threads.
static std::mutex emu_device;

extern "C" int emu_launch(const char* kernel, const unsigned* g, const unsigned* b,
                          unsigned shared, void** args) {
    std::lock_guard<std::mutex> lock(emu_device);
    const dim3 grid{g[0], g[1], g[2]};
    const dim3 block{b[0], b[1], b[2]};
    KERNEL(conv3x3_forward)
    KERNEL(conv3x3_forward_v1)
    KERNEL(conv3x3_dual)
    KERNEL(conv3x3_dual_v1)
    KERNEL(conv_quotient)
    KERNEL(conv_quotient_v1)
    KERNEL(conv_transpose)
    KERNEL(conv_transpose_v1)
    KERNEL(conv_transpose_narrow)
    KERNEL(dense_dual)
    KERNEL(dense_forward_partial)
    KERNEL(dense_forward_reduce)
    KERNEL(dense_quotient_partial)
    KERNEL(dense_quotient_reduce)
    KERNEL(dense_transpose_partial)
    KERNEL(dense_transpose_reduce)
    KERNEL(maxpool_forward)
    KERNEL(maxpool_route)
    KERNEL(prepare_conv)
    KERNEL(positive)
    KERNEL(maxpool_route_scaled)
    KERNEL(relu_backward)
    KERNEL(scale_heads)
    KERNEL(heads)
    KERNEL(heatmap)
    KERNEL(zbox_input)
    KERNEL(zbox_sum)
    KERNEL(mma_pack)
    KERNEL(to_bf16)
    KERNEL(to_f32)
    KERNEL(conv_mma_fwd_tf32_l)
    KERNEL(conv_mma_fwd_tf32_s)
    KERNEL(conv_mma_fwd_bf16_l)
    KERNEL(conv_mma_fwd_bf16_s)
    KERNEL(conv_mma_fwd_tf32x3_l)
    KERNEL(conv_mma_fwd_tf32x3_s)
    KERNEL(conv_mma_dual_tf32_l)
    KERNEL(conv_mma_dual_tf32_s)
    KERNEL(conv_mma_dual_bf16_l)
    KERNEL(conv_mma_dual_bf16_s)
    KERNEL(conv_mma_dual_tf32x3_l)
    KERNEL(conv_mma_dual_tf32x3_s)
    KERNEL(conv_mma_t_tf32_l)
    KERNEL(conv_mma_t_tf32_s)
    KERNEL(conv_mma_t_bf16_l)
    KERNEL(conv_mma_t_bf16_s)
    KERNEL(conv_mma_t_tf32x3_l)
    KERNEL(conv_mma_t_tf32x3_s)
    KERNEL(dense_mma_fwd_tf32)
    KERNEL(dense_mma_fwd_bf16)
    KERNEL(dense_mma_fwd_tf32x3)
    KERNEL(dense_mma_dual_tf32)
    KERNEL(dense_mma_dual_bf16)
    KERNEL(dense_mma_dual_tf32x3)
    KERNEL(dense_mma_t_tf32)
    KERNEL(dense_mma_t_bf16)
    KERNEL(dense_mma_t_tf32x3)
    KERNEL(dense_mma_reduce_fwd)
    KERNEL(dense_mma_reduce_dual)
    KERNEL(dense_mma_reduce_t)
    KERNEL(probe_mma_tf32)
    KERNEL(probe_mma_bf16)
    KERNEL(probe_ldmatrix_bf16)
    KERNEL(probe_ldmatrix_tf32)
    KERNEL(probe_cp_async)
    KERNEL(probe_round)
    if (args != nullptr) std::fprintf(stderr, "emu_launch: unknown kernel %s\n", kernel);
    return 1;
}
