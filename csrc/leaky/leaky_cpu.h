// CPU implementation of the leaky-neuron forward / backward (torch-free; the torch API layer in
// leaky_api.cpp validates arguments, allocates outputs and runs the blocks in parallel).
//
// Work is split into blocks of kLeakyCpuBlock consecutive neurons, and a block into tiles of a few dozen
// neurons. Each step of a tile is one vectorised (`#pragma omp simd`) loop over the tile's neurons, so every
// row access is contiguous. Blocks are independent: run them in any order, on any threads. Compile with -O3
// -ffp-contract=off (no fused multiply-add: the charge must be rounded op by op to give the reference's
// bits) and -fopenmp or -fopenmp-simd.
#pragma once

#include <cstdint>

#include "snnkernels/leaky_params.h"

namespace snnk {

// Neurons per block, the unit of the parallel split. A block is walked in pieces (kLeakyCpuPiece neurons, or
// the whole block for a forward of several step groups) whose coefficients and state live in stack arrays,
// and a piece in tiles (kLeakyCpuFwdTile, kLeakyCpuBwdTile neurons) whose loops run kLeakyCpuGroup steps
// (the forward) or a chunk (the backward) at a time, so that a few dozen rows stream at once whatever T is.
// Build-time knobs (-DSNNK_LEAKY_CPU_BLOCK=..., _PIECE, _FWD_TILE, _BWD_TILE, _GROUP); the measured choice
// is in bench/NOTES.md ("CPU tiles").
#ifndef SNNK_LEAKY_CPU_BLOCK
#define SNNK_LEAKY_CPU_BLOCK 512
#endif
#ifndef SNNK_LEAKY_CPU_PIECE
#define SNNK_LEAKY_CPU_PIECE 128
#endif
#ifndef SNNK_LEAKY_CPU_FWD_TILE
#define SNNK_LEAKY_CPU_FWD_TILE 16
#endif
#ifndef SNNK_LEAKY_CPU_BWD_TILE
#define SNNK_LEAKY_CPU_BWD_TILE 32
#endif
#ifndef SNNK_LEAKY_CPU_GROUP
#define SNNK_LEAKY_CPU_GROUP 8
#endif
constexpr int64_t kLeakyCpuBlock = SNNK_LEAKY_CPU_BLOCK;
constexpr int64_t kLeakyCpuPiece = SNNK_LEAKY_CPU_PIECE;
constexpr int64_t kLeakyCpuFwdTile = SNNK_LEAKY_CPU_FWD_TILE;
constexpr int64_t kLeakyCpuBwdTile = SNNK_LEAKY_CPU_BWD_TILE;
constexpr int64_t kLeakyCpuGroup = SNNK_LEAKY_CPU_GROUP;

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
