// Boolean options of the leaky-neuron kernels as bits of one word. Torch-free, std-free (NVRTC-safe).
//
// The CUDA kernels take two template words, STATIC_MASK and STATIC_FLAGS: for each bit set in
// STATIC_MASK the option is a compile-time constant (its value is the same bit of STATIC_FLAGS); every
// other option is read from the kernel's run-time `flags` argument. The ahead-of-time build fixes only
// the options that shape the inner loop (see leaky_launch_impl.cuh); a run-time compiler (CuPy/NVRTC) can
// fix them all, as the Triton kernels do with their constexpr parameters.
//
// The bits are FLAG_BITS of snnkernels/ops/leaky_settings.py, in the same order (CuPy builds its template words
// from that list); python_tests/ops/test_neuron_settings.py compares the two.
#pragma once

#include "snnkernels/arith.h"

namespace snnk {

enum LeakyFlag : unsigned int {
  kHasVInit = 1u << 0,         // v_init given (else v_init_value everywhere)
  kDecayT = 1u << 1,           // decay is a tensor [C] (else the scalar)
  kGainT = 1u << 2,            // input gain is a tensor [C]
  kBiasT = 1u << 3,            // bias is a tensor [C]
  kHardReset = 1u << 4,        // v = v_reset after a spike (else soft: v = h - v_threshold)
  kStrict = 1u << 5,           // fire on h - v_threshold > 0 (else >= 0)
  kTraining = 1u << 6,         // forward: write the checkpoints
  kStoreFinal = 1u << 7,       // forward: write v_final
  kDetachReset = 1u << 8,      // backward: no gradient through the reset
  kHasGradVFinal = 1u << 9,    // backward: dL/dv_T given
  kStoreGradVInit = 1u << 10,  // backward: write dL/dv_0
  kNeedGradDecay = 1u << 11,   // backward: write per-neuron sums of dL/dh_t * v_{t-1}
  kNeedGradGain = 1u << 12,    // backward: write per-neuron sums of dL/dh_t * x_t
  kNeedGradBias = 1u << 13,    // backward: write per-neuron sums of dL/dh_t
  kVectorized = 1u << 14,      // CUDA: N % VEC == 0 and every pointer 16-byte aligned (wide accesses)
  kStoreVSeq = 1u << 15,       // forward: write v_seq, the post-reset state of every step
  kHasGradVSeq = 1u << 16,     // backward: dL/dv_seq given (added to dL/dv_t at step t)
};

// Whether option F is on: the compile-time value when F is in STATIC_MASK, else the run-time bit.
template <unsigned int F, unsigned int STATIC_MASK, unsigned int STATIC_FLAGS>
SNNK_HOST_DEVICE constexpr bool leaky_flag(unsigned int runtime_flags) {
  return (STATIC_MASK & F) ? ((STATIC_FLAGS & F) != 0u) : ((runtime_flags & F) != 0u);
}

}  // namespace snnk
