// Instantiation sets of the CPU leaky-neuron templates (leaky_cpu_impl.h), one per instruction set:
// snnk::leaky_cpu::base (the compiler's baseline, SSE2 on x86-64) and, with GCC on x86-64,
// snnk::leaky_cpu::avx2 (the same source compiled for AVX2 through `#pragma GCC target`). The entry points
// in leaky_cpu.cpp / leaky_cpu_bwd_*.cpp choose one at run time (leaky_cpu_use_avx2()). Both give the same
// bits: no FMA in either (AVX2 without the FMA extension, and contraction off).
//
// Every translation unit of the CPU core includes this header first, so the pragma below covers all the
// functions it compiles.
#pragma once

// Whatever flags the build passes (-march=native included, which enables FMA): never contract a * b + c
// into a fused multiply-add (the spikes must equal the reference's bit for bit), and let GCC if-convert the
// selects of the reset / surrogate so the inner loops vectorise (no-trapping-math only drops the assumption
// that FP exceptions are observed; results are unchanged). The build flags say the same (-ffp-contract=off);
// this keeps a build that forgets them exact.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#include <cstdint>
#include <type_traits>

#include "leaky/leaky_cpu.h"
#include "snnkernels/convert.h"
#include "snnkernels/dispatch.h"
#include "snnkernels/leaky_math.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SNNK_CPU_NO_AVX2)
#define SNNK_CPU_AVX2 1
#else
#define SNNK_CPU_AVX2 0
#endif

namespace snnk {
namespace leaky_cpu {

// Element storage on the CPU: float, or the 16-bit pattern of fp16 / bf16 (plain integers vectorise
// better than the one-member structs).
template <typename scalar_t>
struct CpuElem;
template <>
struct CpuElem<float> {
  using storage = float;
  static SNNK_INLINE float load(float v) { return v; }
  static SNNK_INLINE float store(float v) { return v; }
};
template <>
struct CpuElem<half_t> {
  using storage = uint16_t;
  static SNNK_INLINE float load(uint16_t v) { return half_bits_to_float_sw(v); }
  static SNNK_INLINE uint16_t store(float v) { return float_to_half_bits_sw(v); }
};
template <>
struct CpuElem<bf16_t> {
  using storage = uint16_t;
  static SNNK_INLINE float load(uint16_t v) { return bf16_bits_to_float_sw(v); }
  static SNNK_INLINE uint16_t store(float v) { return float_to_bf16_bits_sw(v); }
};

// Whether the entry points run the AVX2 set (leaky_cpu.cpp: the CPU has it and leaky_cpu_set_isa allows it).
bool leaky_cpu_use_avx2();

// Backward entry points per element type (leaky_cpu_bwd_<type>.cpp).
void bwd_blocks_f32(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end);
void bwd_blocks_f16(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end);
void bwd_blocks_bf16(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end);

}  // namespace leaky_cpu
}  // namespace snnk

#define SNNK_CPU_ISA base
#include "leaky/leaky_cpu_impl.h"
#undef SNNK_CPU_ISA

#if SNNK_CPU_AVX2
#pragma GCC push_options
#pragma GCC target("avx2")
#define SNNK_CPU_ISA avx2
#include "leaky/leaky_cpu_impl.h"
#undef SNNK_CPU_ISA
#pragma GCC pop_options
#endif

// The backward of one element type on the chosen instruction set.
#if SNNK_CPU_AVX2
#define SNNK_LEAKY_CPU_BWD_ENTRY(NAME, TYPE)                                                     \
  void NAME(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end) {                   \
    if (leaky_cpu_use_avx2()) {                                                                  \
      avx2::bwd_dispatch<TYPE>(p, block_begin, block_end);                                       \
    } else {                                                                                     \
      base::bwd_dispatch<TYPE>(p, block_begin, block_end);                                       \
    }                                                                                            \
  }
#else
#define SNNK_LEAKY_CPU_BWD_ENTRY(NAME, TYPE)                                                     \
  void NAME(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end) {                   \
    base::bwd_dispatch<TYPE>(p, block_begin, block_end);                                         \
  }
#endif
