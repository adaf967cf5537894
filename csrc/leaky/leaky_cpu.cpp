// CPU implementation of the leaky-neuron ops (see leaky_cpu.h): the forward, the instruction-set choice and
// the entry points. Math: snnkernels/leaky_math.h, the per-element functions the CUDA kernels use too, so
// the CPU gives the Triton / eager bits in fp32.
#include "leaky/leaky_cpu_isa.h"  // first: its pragmas must cover this whole file

#include <algorithm>
#include <atomic>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace snnk {
namespace leaky_cpu {
namespace {

std::atomic<int> g_isa{static_cast<int>(LeakyCpuIsa::kAuto)};

bool cpu_has_avx2() {
#if SNNK_CPU_AVX2
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

}  // namespace

bool leaky_cpu_use_avx2() {
  return g_isa.load(std::memory_order_relaxed) != static_cast<int>(LeakyCpuIsa::kBaseline) && cpu_has_avx2();
}

}  // namespace leaky_cpu

void leaky_cpu_set_isa(LeakyCpuIsa isa) { leaky_cpu::g_isa.store(static_cast<int>(isa)); }

const char* leaky_cpu_isa_name() { return leaky_cpu::leaky_cpu_use_avx2() ? "avx2" : "baseline"; }

void leaky_fwd_cpu_blocks(const LeakyFwdParams& p, int64_t block_begin, int64_t block_end) {
  if (p.N == 0 || block_begin >= block_end) return;
  SNNK_ELEMENT_SWITCH(p.dtype, scalar_t, [&] {
#if SNNK_CPU_AVX2
    if (leaky_cpu::leaky_cpu_use_avx2()) {
      leaky_cpu::avx2::fwd_dispatch<scalar_t>(p, block_begin, block_end);
      return;
    }
#endif
    leaky_cpu::base::fwd_dispatch<scalar_t>(p, block_begin, block_end);
  });
}

void leaky_bwd_cpu_blocks(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end) {
  if (p.N == 0 || block_begin >= block_end) return;
  switch (p.dtype) {
    case ElementType::kFloat16:
      leaky_cpu::bwd_blocks_f16(p, block_begin, block_end);
      break;
    case ElementType::kBFloat16:
      leaky_cpu::bwd_blocks_bf16(p, block_begin, block_end);
      break;
    default:
      leaky_cpu::bwd_blocks_f32(p, block_begin, block_end);
  }
}

namespace {

// Blocks split into one contiguous range per OpenMP thread (serial without OpenMP).
template <typename Fn>
void for_block_ranges(int64_t n_blocks, const Fn& fn) {
#if defined(_OPENMP)
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    const int64_t per = ceil_div(n_blocks, threads);
    const int64_t begin = std::min(n_blocks, id * per);
    fn(begin, std::min(n_blocks, begin + per));
  }
#else
  fn(0, n_blocks);
#endif
}

}  // namespace

void leaky_fwd_cpu(const LeakyFwdParams& p) {
  for_block_ranges(leaky_cpu_num_blocks(p.N), [&](int64_t b0, int64_t b1) { leaky_fwd_cpu_blocks(p, b0, b1); });
}

void leaky_bwd_cpu(const LeakyBwdParams& p) {
  for_block_ranges(leaky_cpu_num_blocks(p.N), [&](int64_t b0, int64_t b1) { leaky_bwd_cpu_blocks(p, b0, b1); });
}

}  // namespace snnk
