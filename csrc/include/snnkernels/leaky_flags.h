// Boolean options of the leaky-neuron kernels as bits of one word. Torch-free, std-free (NVRTC-safe).
//
// The CUDA kernels take two template words, STATIC_MASK and STATIC_FLAGS: for each bit set in
// STATIC_MASK the option is a compile-time constant (its value is the same bit of STATIC_FLAGS); every
// other option is read from the kernel's run-time `flags` argument. The ahead-of-time build fixes only
// the options that shape the inner loop (see leaky_launch_impl.cuh); a run-time compiler (CuPy/NVRTC) can
// fix them all, as the Triton kernels do with their constexpr parameters.
//
// The bits are FLAG_BITS of snnkernels/ops/leaky_settings.py, in the same order (CuPy builds its template words
// from that list), generated into leaky_args.h.
#pragma once

#include "snnkernels/arith.h"
#include "snnkernels/leaky_args.h"

namespace snnk {

// One enumerator per FLAG_BITS entry, k<CamelCase name> = 1u << bit (leaky_args.h, generated); what each bit
// means: docs/neuron.md "The neuron's settings".
enum LeakyFlag : unsigned int { SNNK_LEAKY_FLAG_ENUMERATORS };

// Whether option F is on: the compile-time value when F is in STATIC_MASK, else the run-time bit.
template <unsigned int F, unsigned int STATIC_MASK, unsigned int STATIC_FLAGS>
SNNK_HOST_DEVICE constexpr bool leaky_flag(unsigned int runtime_flags) {
  return (STATIC_MASK & F) ? ((STATIC_FLAGS & F) != 0u) : ((runtime_flags & F) != 0u);
}

}  // namespace snnk
