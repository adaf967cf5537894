// CPU implementation of the leaky-neuron forward / backward (torch-free; the torch API layer in
// leaky_api.cpp validates arguments, allocates outputs and runs the blocks in parallel).
//
// Work is split into blocks of kLeakyCpuBlock consecutive neurons. A block keeps its state and
// coefficients in small arrays and walks the time axis; each step is one vectorised (`#pragma omp simd`)
// loop over the block's neurons, so every row access is contiguous. Blocks are independent: run them in
// any order, on any threads. Compile with -O3 -ffp-contract=off (no fused multiply-add: the charge must be
// rounded op by op to give the reference's bits) and -fopenmp or -fopenmp-simd.
#pragma once

#include <cstdint>

#include "snnkernels/leaky_params.h"

namespace snnk {

// Neurons per block (a build-time knob: -DSNNK_LEAKY_CPU_BLOCK=...). Long rows keep the hardware
// prefetchers streaming; the backward's stash (CHUNK rows of the block) must still sit in L2.
#ifndef SNNK_LEAKY_CPU_BLOCK
#define SNNK_LEAKY_CPU_BLOCK 2048
#endif
constexpr int64_t kLeakyCpuBlock = SNNK_LEAKY_CPU_BLOCK;

inline int64_t leaky_cpu_num_blocks(int64_t N) { return ceil_div(N, kLeakyCpuBlock); }

// Blocks [block_begin, block_end) of the forward / backward.
void leaky_fwd_cpu_blocks(const LeakyFwdParams& p, int64_t block_begin, int64_t block_end);
void leaky_bwd_cpu_blocks(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end);

// Instruction set of the CPU kernels: the widest the CPU supports (kAuto, the default) or the compiler's
// baseline (kBaseline; tests compare the two, which must give the same bits). AVX2 exists in builds with
// GCC on x86-64 (leaky_cpu_isa.h).
enum class LeakyCpuIsa : int { kAuto = 0, kBaseline = 1 };
void leaky_cpu_set_isa(LeakyCpuIsa isa);
const char* leaky_cpu_isa_name();  // "avx2" or "baseline": what runs now

// The whole op: all blocks, in parallel through OpenMP when compiled with it (C++ tests and tools; the
// torch extension uses at::parallel_for over the blocks instead, so torch's thread settings apply).
void leaky_fwd_cpu(const LeakyFwdParams& p);
void leaky_bwd_cpu(const LeakyBwdParams& p);

}  // namespace snnk
