// Launch templates of the CUDA leaky kernels: grid/block choice and the mapping of run-time options to
// template instantiations. Host code for nvcc only (included by leaky_launch.cu and leaky_bwd_*.cu).
//
// Ahead-of-time instantiations, per element type: the forward fixes hard_reset and store_v_seq, the backward
// the surrogate id, hard_reset, detach_reset and has_grad_v_seq = false; every other option is a run-time flag
// (warp-uniform branches outside or at the edge of the inner loop). A backward given dL/dv_seq runs its own
// instances with the surrogate chosen at run time (SG_ID = -1), so the default ones keep their code. Each comes
// in two widths: VEC neurons per thread with wide accesses when N % VEC == 0 and all pointers are 16-byte
// aligned, else one neuron per thread (any size and alignment). So kVectorized is always a compile-time "on": no
// per-element bound checks in the inner loop. Forward: 2 x 2 x 2 kernels, backward 8 x 2 x 2 x 2 plus 2 x 2 x 2
// (dL/dv_seq) per type. CHUNK is 8 (the library's chunk); other chunk lengths run on the same kernels (see
// leaky_kernel.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "leaky/leaky_kernel.cuh"
#include "leaky/leaky_launch.h"
#include "snnkernels/dispatch.h"

namespace snnk {
namespace leaky_launch {

constexpr int kThreads = 256;
constexpr int kChunk = 8;

// Forward: one 16-byte access per tensor and step. Backward: 2 neurons per thread whatever the type, since
// it stashes CHUNK steps of x, dL/ds and h per neuron in registers (a warp still moves whole 128- or
// 256-byte rows per step).
template <typename scalar_t>
constexpr int fwd_vec() { return 16 / static_cast<int>(sizeof(scalar_t)); }
template <typename scalar_t>
constexpr int bwd_vec() { return 2; }

inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

inline unsigned int grid_for(int64_t n, int vec) {
  return static_cast<unsigned int>(ceil_div(ceil_div(n, vec), kThreads));
}

inline const char* last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <typename scalar_t>
const char* launch_fwd(const LeakyFwdParams& p, void* stream) {
  constexpr int VEC = fwd_vec<scalar_t>();
  if (p.N == 0) return nullptr;
  const bool wide = p.N % VEC == 0 && aligned16(p.x) && aligned16(p.spikes) &&
                    (!p.has_v_init || aligned16(p.v_init)) && (!p.store_final_state || aligned16(p.v_final)) &&
                    (!p.training || aligned16(p.checkpoints)) && (!p.store_v_seq || aligned16(p.v_seq));
  const unsigned int flags = p.flags() | kVectorized;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  SNNK_BOOL_SWITCH(wide, WIDE, [&] {
    constexpr int kVec = WIDE ? VEC : 1;
    const dim3 grid(grid_for(p.N, kVec));
    SNNK_BOOL_SWITCH(p.hard_reset, HARD, [&] {
      SNNK_BOOL_SWITCH(p.store_v_seq, VSEQ, [&] {
        constexpr unsigned int kMask = kHardReset | kVectorized | kStoreVSeq;
        constexpr unsigned int kValue = (HARD ? kHardReset : 0u) | kVectorized | (VSEQ ? kStoreVSeq : 0u);
        leaky_fwd_kernel<scalar_t, kChunk, kVec, kMask, kValue><<<grid, kThreads, 0, s>>>(
            static_cast<const scalar_t*>(p.x), p.v_init, p.decay_t, p.gain_t, p.bias_t,
            static_cast<scalar_t*>(p.spikes), p.v_final, p.checkpoints, p.v_seq, p.T, p.N, p.S, p.C,
            SNNK_LEAKY_FWD_KERNEL_SCALAR_ARGS(p), p.chunk, flags);
      });
    });
  });
  return last_error();
}

template <typename scalar_t, int SG, int VEC, unsigned int MASK, unsigned int VALUE>
void launch_bwd_kernel(const LeakyBwdParams& p, dim3 grid, cudaStream_t s, unsigned int flags) {
  leaky_bwd_kernel<scalar_t, SG, kChunk, VEC, MASK, VALUE><<<grid, kThreads, 0, s>>>(
      static_cast<const scalar_t*>(p.grad_spikes), p.grad_v_final, static_cast<const scalar_t*>(p.x), p.v_init,
      p.checkpoints, p.decay_t, p.gain_t, p.bias_t, static_cast<scalar_t*>(p.grad_x), p.grad_v_init, p.grad_decay,
      p.grad_gain, p.grad_bias, p.grad_v_seq, p.T, p.N, p.S, p.C, SNNK_LEAKY_BWD_KERNEL_SCALAR_ARGS(p), p.chunk, flags);
}

template <typename scalar_t>
const char* launch_bwd(const LeakyBwdParams& p, void* stream) {
  constexpr int VEC = bwd_vec<scalar_t>();
  if (p.N == 0) return nullptr;
  const bool wide =
      p.N % VEC == 0 && aligned16(p.grad_spikes) && aligned16(p.x) && aligned16(p.grad_x) &&
      (!p.has_grad_v_final || aligned16(p.grad_v_final)) && (!p.has_v_init || aligned16(p.v_init)) &&
      aligned16(p.checkpoints) && (!p.need_grad_v_init || aligned16(p.grad_v_init)) &&
      (!p.need_grad_decay || aligned16(p.grad_decay)) && (!p.need_grad_gain || aligned16(p.grad_gain)) &&
      (!p.need_grad_bias || aligned16(p.grad_bias)) && (!p.has_grad_v_seq || aligned16(p.grad_v_seq));
  const unsigned int flags = p.flags() | kVectorized;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  SNNK_BOOL_SWITCH(wide, WIDE, [&] {
    constexpr int kVec = WIDE ? VEC : 1;
    const dim3 grid(grid_for(p.N, kVec));
    SNNK_BOOL_SWITCH(p.hard_reset, HARD, [&] {
      SNNK_BOOL_SWITCH(p.detach_reset, DETACH, [&] {
        constexpr unsigned int kMask = kHardReset | kDetachReset | kVectorized | kHasGradVSeq;
        constexpr unsigned int kValue = (HARD ? kHardReset : 0u) | (DETACH ? kDetachReset : 0u) | kVectorized;
        if (p.has_grad_v_seq) {
          launch_bwd_kernel<scalar_t, -1, kVec, kMask, kValue | kHasGradVSeq>(p, grid, s, flags);
        } else {
          SNNK_SURROGATE_SWITCH(p.surrogate_id, SG,
                                [&] { launch_bwd_kernel<scalar_t, SG, kVec, kMask, kValue>(p, grid, s, flags); });
        }
      });
    });
  });
  return last_error();
}

}  // namespace leaky_launch
}  // namespace snnk
