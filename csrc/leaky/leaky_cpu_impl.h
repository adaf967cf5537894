// Templates of the CPU leaky-neuron implementation (see leaky_cpu.h). Included by leaky_cpu.cpp (forward)
// and leaky_cpu_bwd_<type>.cpp (backward, one file per element type so builds run in parallel) through
// leaky_cpu_isa.h, once per instruction set: the definitions land in namespace
// snnk::leaky_cpu::SNNK_CPU_ISA, and the entry points pick the widest set the CPU runs (leaky_cpu.cpp).
// No include guard on purpose; it includes nothing itself (leaky_cpu_isa.h includes the dependencies
// before any target pragma, so standard-library code is never compiled for a wider instruction set).
//
// Tile algorithm (leaky_cpu.h has the sizes): a piece of a block has its coefficients and state in stack
// arrays; the forward walks the piece's tiles one group of steps at a time, every step one
// `#pragma omp simd` loop over a tile's neurons (a contiguous run of each row), so only 2 x GROUP rows
// stream at a time and the state stays in L1. The backward walks the chunks last to first and, per chunk,
// the tiles: each rebuilds the chunk's h_t from its checkpoint into the tile's stash (as the forward
// computed them: same functions, same order), then walks the chunk backwards. Software prefetches run a
// few tiles ahead on every row.
#ifndef SNNK_CPU_ISA
#error "define SNNK_CPU_ISA (the namespace of this instantiation set) and include leaky_cpu_isa.h instead"
#endif

namespace snnk {
namespace leaky_cpu {
namespace SNNK_CPU_ISA {

// Backward: steps of a chunk whose h (and x, v_{t-1}) are kept per tile; longer chunks are walked in
// pieces of this length, each recomputed from the chunk's checkpoint (as the CUDA kernel does).
constexpr int64_t kStash = 16;

SNNK_INLINE void copy_f32(const float* __restrict__ src, int64_t len, float* __restrict__ dst) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) dst[i] = src[i];
}

SNNK_INLINE void fill_f32(float value, int64_t len, float* __restrict__ dst) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) dst[i] = value;
}

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// Prefetch distance, in tiles (a build-time knob; 0 turns the prefetches off).
#ifndef SNNK_LEAKY_CPU_PREFETCH
#define SNNK_LEAKY_CPU_PREFETCH 4
#endif

// The same row's piece SNNK_LEAKY_CPU_PREFETCH tiles ahead, into the caches (every 64-byte line of it).
// A hint only: it never faults, whatever the address, and never changes a result.
template <int64_t W, typename T>
SNNK_INLINE void prefetch_ahead(const T* row, bool for_write) {
#if SNNK_LEAKY_CPU_PREFETCH > 0 && (defined(__GNUC__) || defined(__clang__))
  constexpr int64_t per_line = 64 / sizeof(T);
  const T* ahead = row + SNNK_LEAKY_CPU_PREFETCH * W;
  for (int64_t i = 0; i < W; i += per_line) {
    if (for_write) {
      __builtin_prefetch(ahead + i, 1);
    } else {
      __builtin_prefetch(ahead + i, 0);
    }
  }
#endif
}

// f(full, i, w) for the tiles of W neurons that cover [0, len): full is std::true_type for a whole tile (w ==
// W, a constant trip count for its loops), std::false_type for the ragged last one.
template <int64_t W, typename F>
SNNK_INLINE void for_tiles(int64_t len, const F& f) {
  int64_t i = 0;
  for (; i + W <= len; i += W) f(std::true_type{}, i, W);
  if (i < len) f(std::false_type{}, i, len - i);
}

// Coefficients of neurons n0 .. n0 + len - 1: the tensor entry of each neuron's channel, or the scalar.
SNNK_INLINE void fill_coefficient(const float* tensor, float value, int64_t n0, int64_t len, int64_t S, int64_t C,
                                  float* out) {
  if (tensor == nullptr) {
    fill_f32(value, len, out);
    return;
  }
  int64_t q = n0 / S;
  int64_t r = n0 - q * S;
  int64_t c = q % C;
  for (int64_t i = 0; i < len; ++i) {
    out[i] = tensor[c];
    if (++r == S) {
      r = 0;
      if (++c == C) c = 0;
    }
  }
}

// A piece's coefficients a, b, c and its initial state v (forward and backward parameters alike).
template <typename Params>
SNNK_INLINE void load_piece(const Params& p, int64_t n0, int64_t len, float* a, float* b, float* c, float* v) {
  fill_coefficient(p.decay_t, p.decay, n0, len, p.S, p.C, a);
  fill_coefficient(p.gain_t, p.gain, n0, len, p.S, p.C, b);
  fill_coefficient(p.bias_t, p.bias, n0, len, p.S, p.C, c);
  if (p.has_v_init) {
    copy_f32(p.v_init + n0, len, v);
  } else {
    fill_f32(p.v_init_value, len, v);
  }
}

// One forward step of len neurons: h = a v + b x + c, fire, reset; with WRITE the spikes are stored. `strict`
// is a compile-time constant in the forward (fwd_blocks' template flag, folded once this is inlined) and a
// run-time one in the backward's advance to a stash piece. L: the charge's leak term (leaky_math.h).
template <typename scalar_t, bool HARD, bool WRITE, LeakTerm L = LeakTerm::kPerNeuron>
SNNK_INLINE void fwd_step(const typename CpuElem<scalar_t>::storage* __restrict__ x,
                          typename CpuElem<scalar_t>::storage* __restrict__ s, const float* __restrict__ a,
                          const float* __restrict__ b, const float* __restrict__ c, float* __restrict__ v, int64_t len,
                          float v_threshold, float v_reset, bool strict, typename CpuElem<scalar_t>::storage one,
                          typename CpuElem<scalar_t>::storage zero) {
  using E = CpuElem<scalar_t>;
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    const float h = leaky_charge_as<L>(a[i], v[i], b[i], E::load(x[i]), c[i]);
    const bool spike = leaky_fire(h, v_threshold, strict);
    if constexpr (WRITE) s[i] = spike ? one : zero;
    v[i] = leaky_reset(h, spike, v_threshold, v_reset, HARD);
  }
}

// One step of the backward's recompute: h (and, with KEEP_XV, x and v_{t-1}) into the tile's stash.
template <typename scalar_t, bool HARD, bool KEEP_XV>
SNNK_INLINE void recompute_step(const typename CpuElem<scalar_t>::storage* __restrict__ x, const float* __restrict__ a,
                                const float* __restrict__ b, const float* __restrict__ c, float* __restrict__ v,
                                float* __restrict__ hk, float* __restrict__ xk, float* __restrict__ vk, int64_t len,
                                float v_threshold, float v_reset, bool strict) {
  using E = CpuElem<scalar_t>;
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    const float xf = E::load(x[i]);
    const float h = leaky_charge(a[i], v[i], b[i], xf, c[i]);
    hk[i] = h;
    if constexpr (KEEP_XV) {
      xk[i] = xf;
      vk[i] = v[i];
    }
    v[i] = leaky_reset(h, leaky_fire(h, v_threshold, strict), v_threshold, v_reset, HARD);
  }
}

// One step of the backward walk: dL/dh from dL/ds and dL/dv, then dL/dx and dL/dv_{t-1}; with KEEP_GH
// dL/dh is kept for the coefficient sums.
template <typename scalar_t, bool HARD, bool DETACH, int SG, bool KEEP_GH>
SNNK_INLINE void walk_step(const float* __restrict__ hk, const typename CpuElem<scalar_t>::storage* __restrict__ gs,
                           typename CpuElem<scalar_t>::storage* __restrict__ gx, const float* __restrict__ a,
                           const float* __restrict__ b, float* __restrict__ grad_v, float* __restrict__ grad_h,
                           int64_t len, float v_threshold, float v_reset, float sg_param, bool strict) {
  using E = CpuElem<scalar_t>;
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    const float gh = leaky_grad_h<SG>(hk[i], E::load(gs[i]), grad_v[i], v_threshold, v_reset, sg_param, SG, HARD,
                                      strict, DETACH);
    gx[i] = E::store(mul_rn(gh, b[i]));
    grad_v[i] = mul_rn(gh, a[i]);
    if constexpr (KEEP_GH) grad_h[i] = gh;
  }
}

// acc += g * w (w null: acc += g)
SNNK_INLINE void accumulate(float* __restrict__ acc, const float* __restrict__ g, const float* __restrict__ w,
                            int64_t len) {
  if (w == nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) acc[i] = add_rn(acc[i], g[i]);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) acc[i] = add_rn(acc[i], mul_rn(g[i], w[i]));
  }
}

// The forward's checkpoint: the state entering step t (v of neurons n .. n + len - 1), stored when t starts a
// chunk after the first.
SNNK_INLINE void store_checkpoint_if_due(const LeakyFwdParams& p, int64_t t, const float* v, int64_t n, int64_t len) {
  if (p.training && t > 0 && t % p.chunk == 0) copy_f32(v, len, p.checkpoints + (t / p.chunk - 1) * p.N + n);
}

// Whether neurons n .. n + len - 1 share one value of each coefficient: no per-channel tensor, or all in one
// channel (one run of S neurons).
template <typename Params>
SNNK_INLINE bool uniform_coefficients(const Params& p, int64_t n, int64_t len) {
  if (p.decay_t == nullptr && p.gain_t == nullptr && p.bias_t == nullptr) return true;
  return n / p.S == (n + len - 1) / p.S;
}

// The end of the run of whole W-neuron tiles from i (an offset in the piece at n0; whole: the end of its whole
// tiles) whose neurons share one value of each coefficient: all of them without per-channel tensors, else those
// inside the run of S neurons that holds neuron n0 + i; i itself where the tile at i reaches past that run.
template <typename Params>
SNNK_INLINE int64_t uniform_run_end(const Params& p, int64_t n0, int64_t i, int64_t whole, int64_t W) {
  if (p.decay_t == nullptr && p.gain_t == nullptr && p.bias_t == nullptr) return whole;
  const int64_t run_end = ((n0 + i) / p.S + 1) * p.S - n0;
  return i + (min_i64(run_end, whole) - i) / W * W;
}

#ifndef SNNK_UNROLL_STEPS  // (this file is included once per instruction set)
#if defined(__GNUC__) && !defined(__clang__)
#define SNNK_UNROLL_STEPS _Pragma("GCC unroll 16")
#else
#define SNNK_UNROLL_STEPS
#endif
#if defined(__GNUC__) || defined(__clang__)
#define SNNK_NOINLINE __attribute__((noinline))
#define SNNK_LAMBDA_INLINE __attribute__((always_inline))
#else
#define SNNK_NOINLINE
#define SNNK_LAMBDA_INLINE
#endif
#endif

// The forward's register-blocked steps: a whole group of K steps (K = kLeakyCpuGroup, or 4: T = 4 and the last
// 4 steps of T = 12, 20, 60, ...) inside one vectorised loop over a full tile's neurons, with the state in a
// register and the coefficients as scalars. The per-step loops above keep them in the piece's arrays and reload
// them every step; a constant trip count is what lets the compiler hold them in registers (a run-time one
// de-vectorised these loops in a test). Same functions, same order, so the same bits as the per-step path. The
// same for the backward (the chunk's h_t in registers) measured no faster and slower at T = 4 (bench/NOTES.md,
// "CPU register blocking").
constexpr int64_t kRegisterSteps = kLeakyCpuGroup;
constexpr int64_t kRegisterStepsShort = 4;

// The register-blocked step count for `steps` steps, or 0 where the per-step path runs.
SNNK_INLINE int64_t register_steps(int64_t steps) {
  return steps == kRegisterSteps || steps == kRegisterStepsShort ? steps : 0;
}

// Lanes of a tile whose steps the register-blocked forward interleaves: the chain of one neuron's K steps is
// serial (each charge waits for the last reset), so two independent vectors per step keep the core busy. GCC
// runs a 16-neuron fp32 tile as two 8-lane AVX2 vectors one after the other; written as two halves stepped
// together it interleaves them. fp16 / bf16 tiles already run as one 16-lane pair and got slower split
// (bench/NOTES.md, "The non-finite charge's forward cost, decided per tile").
template <typename scalar_t>
constexpr int64_t kRegisterChains = std::is_same<scalar_t, float>::value ? 2 : 1;

// Steps [t0, t0 + K) of the whole tiles of neurons n0 + i_begin .. n0 + i_end - 1 (i_end - i_begin a multiple
// of W), which share the coefficients a, b, c; v: the state of the piece at n0, read and written back once per
// tile. The charge's leak term L is fixed for the run (leaky_math.h). Out of line, one call per run: inlined
// into fwd_blocks, GCC stopped unrolling the tile's vectors once the charge had its (v - v) and reloaded row
// pointers at every step.
template <typename scalar_t, bool HARD, bool STRICT, int64_t W, int64_t K, LeakTerm L>
SNNK_NOINLINE void fwd_run_registers(const LeakyFwdParams& p, int64_t n0, int64_t i_begin, int64_t i_end, int64_t t0,
                                     float a, float b, float c, float* __restrict__ v) {
  using E = CpuElem<scalar_t>;
  using storage = typename E::storage;
  constexpr int64_t M = kRegisterChains<scalar_t>, Q = W / M;
  static_assert(W % M == 0, "a tile is a whole number of chains");
  const int64_t N = p.N;
  const storage* __restrict__ x = static_cast<const storage*>(p.x) + t0 * N + n0;
  storage* __restrict__ spikes = static_cast<storage*>(p.spikes) + t0 * N + n0;
  const storage one = E::store(1.0f), zero = E::store(0.0f);
  const float v_th = p.v_threshold, v_reset = p.v_reset;
  for (int64_t j = i_begin; j < i_end; j += W) {
    for (int64_t k = 0; k < K; ++k) {
      prefetch_ahead<W>(x + k * N + j, false);
      prefetch_ahead<W>(spikes + k * N + j, true);
    }
#pragma omp simd
    for (int64_t i = j; i < j + Q; ++i) {
      float vi[M];
      for (int64_t m = 0; m < M; ++m) vi[m] = v[i + m * Q];
      SNNK_UNROLL_STEPS
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t m = 0; m < M; ++m) {
          const int64_t e = k * N + i + m * Q;
          const float h = leaky_charge_as<L>(a, vi[m], b, E::load(x[e]), c);
          const bool spike = leaky_fire(h, v_th, STRICT);
          spikes[e] = spike ? one : zero;
          vi[m] = leaky_reset(h, spike, v_th, v_reset, HARD);
        }
      }
      for (int64_t m = 0; m < M; ++m) v[i + m * Q] = vi[m];
    }
  }
}

// fwd_run_registers with the group's K and the run's leak term.
template <typename scalar_t, bool HARD, bool STRICT, int64_t W>
SNNK_INLINE void fwd_run(const LeakyFwdParams& p, int64_t n0, int64_t i_begin, int64_t i_end, int64_t t0,
                         int64_t k_steps, float a, float b, float c, float* v) {
  constexpr int64_t K8 = kRegisterSteps, K4 = kRegisterStepsShort;
  constexpr LeakTerm kAlways = LeakTerm::kAlways, kNever = LeakTerm::kNever;
  const bool leaks = leak_term_of(a) == kAlways;
  if (k_steps == K8) {
    if (leaks) {
      fwd_run_registers<scalar_t, HARD, STRICT, W, K8, kAlways>(p, n0, i_begin, i_end, t0, a, b, c, v);
    } else {
      fwd_run_registers<scalar_t, HARD, STRICT, W, K8, kNever>(p, n0, i_begin, i_end, t0, a, b, c, v);
    }
  } else {
    if (leaks) {
      fwd_run_registers<scalar_t, HARD, STRICT, W, K4, kAlways>(p, n0, i_begin, i_end, t0, a, b, c, v);
    } else {
      fwd_run_registers<scalar_t, HARD, STRICT, W, K4, kNever>(p, n0, i_begin, i_end, t0, a, b, c, v);
    }
  }
}

// Steps [t0, t1) of one forward tile: neurons n .. n + len - 1, len <= W, whose coefficients and state are
// at a, b, c, v (the piece's arrays). FULL: len == W, a constant trip count for every loop (no remainders).
// VSEQ: also store each step's post-reset state into v_seq (a template flag: the default instance has no store).
// L: the charge's leak term.
template <typename scalar_t, bool HARD, bool STRICT, int64_t W, bool FULL, bool VSEQ, LeakTerm L>
SNNK_INLINE void fwd_tile_steps(const LeakyFwdParams& p, int64_t n, int64_t tail_len, int64_t t0, int64_t t1,
                                const float* a, const float* b, const float* c, float* v) {
  using E = CpuElem<scalar_t>;
  using storage = typename E::storage;
  const int64_t len = FULL ? W : tail_len;
  const int64_t N = p.N;
  const storage* x = static_cast<const storage*>(p.x) + n;
  storage* spikes = static_cast<storage*>(p.spikes) + n;
  const storage one = E::store(1.0f), zero = E::store(0.0f);
  for (int64_t t = t0; t < t1; ++t) {
    store_checkpoint_if_due(p, t, v, n, len);
    prefetch_ahead<W>(x + t * N, false);
    prefetch_ahead<W>(spikes + t * N, true);
    fwd_step<scalar_t, HARD, true, L>(x + t * N, spikes + t * N, a, b, c, v, len, p.v_threshold, p.v_reset, STRICT,
                                      one, zero);
    if constexpr (VSEQ) copy_f32(v, len, p.v_seq + t * N + n);
  }
}

// fwd_tile_steps with the leak term fixed where a whole tile's neurons share a decay (every whole tile without a
// decay tensor), per neuron in a tile of several channels and in the ragged last tile (one a call: not worth
// another copy of the loops).
template <typename scalar_t, bool HARD, bool STRICT, int64_t W, bool FULL, bool VSEQ>
SNNK_INLINE void fwd_tile_steps_leak(const LeakyFwdParams& p, int64_t n, int64_t tail_len, int64_t t0, int64_t t1,
                                     const float* a, const float* b, const float* c, float* v) {
  if constexpr (FULL) {
    if (uniform_coefficients(p, n, W)) {
      if (leak_term_of(a[0]) == LeakTerm::kAlways) {
        fwd_tile_steps<scalar_t, HARD, STRICT, W, true, VSEQ, LeakTerm::kAlways>(p, n, W, t0, t1, a, b, c, v);
      } else {
        fwd_tile_steps<scalar_t, HARD, STRICT, W, true, VSEQ, LeakTerm::kNever>(p, n, W, t0, t1, a, b, c, v);
      }
      return;
    }
  }
  fwd_tile_steps<scalar_t, HARD, STRICT, W, FULL, VSEQ, LeakTerm::kPerNeuron>(p, n, tail_len, t0, t1, a, b, c, v);
}

// Blocks [block_begin, block_end), in pieces of BK neurons: per piece, groups of G steps; per group, tile by
// tile, so that at most 2 G rows stream at a time whatever T is. BK: kLeakyCpuPiece when one group covers T;
// with several, the whole block, so that each group reads longer runs of each row (fwd_dispatch). VSEQ: the
// membrane sequence is stored too (per-step path only). The leak term is fixed per run of register-blocked tiles
// and per tile of the per-step path wherever the tile's neurons share a decay: only a tile of several channels
// decides it per neuron.
template <typename scalar_t, bool HARD, bool STRICT, int64_t BK, bool VSEQ = false, int64_t W = kLeakyCpuFwdTile,
          int64_t G = kLeakyCpuGroup>
void fwd_blocks(const LeakyFwdParams& p, int64_t block_begin, int64_t block_end) {
  static_assert(BK % W == 0 && kLeakyCpuBlock % BK == 0, "a block is a whole number of pieces and tiles");
  alignas(64) float a[BK], b[BK], c[BK], v[BK];
  const int64_t end = min_i64(block_end * kLeakyCpuBlock, p.N);
  for (int64_t n0 = block_begin * kLeakyCpuBlock; n0 < end; n0 += BK) {
    const int64_t len = min_i64(BK, end - n0);
    const int64_t whole = len - len % W;
    load_piece(p, n0, len, a, b, c, v);
    for (int64_t t0 = 0; t0 < p.T; t0 += G) {
      const int64_t t1 = min_i64(p.T, t0 + G);
      // inlined: a call per tile and group measured 10 % on the per-step path
      const auto steps = [&](auto full, int64_t i, int64_t w) SNNK_LAMBDA_INLINE {
        fwd_tile_steps_leak<scalar_t, HARD, STRICT, W, decltype(full)::value, VSEQ>(p, n0 + i, w, t0, t1, a + i,
                                                                                    b + i, c + i, v + i);
      };
      int64_t i = 0;
      if constexpr (G == kRegisterSteps && !VSEQ) {
        // a group whose checkpoints (if any) fall on its first step runs register-blocked on its runs of tiles
        // that share the coefficients
        const int64_t k_steps = !p.training || p.chunk % kRegisterSteps == 0 ? register_steps(t1 - t0) : 0;
        while (k_steps && i < whole) {
          const int64_t run_end = uniform_run_end(p, n0, i, whole, W);
          if (run_end == i) {
            steps(std::true_type{}, i, W);
            i += W;
            continue;
          }
          store_checkpoint_if_due(p, t0, v + i, n0 + i, run_end - i);
          fwd_run<scalar_t, HARD, STRICT, W>(p, n0, i, run_end, t0, k_steps, a[i], b[i], c[i], v);
          i = run_end;
        }
      }
      for_tiles<W>(len - i, [&](auto full, int64_t j, int64_t w) { steps(full, i + j, w); });
    }
    if (p.store_final_state) copy_f32(v, len, p.v_final + n0);
  }
}

// The backward of chunk ci for one tile: neurons n .. n + len - 1, len <= W (FULL as in fwd_tile_steps),
// whose coefficients, initial state, carried dL/dv and coefficient sums are at a, b, c, v0, grad_v, acc_* (the
// piece's arrays). VSEQ: dL/dv_seq[t] is added to dL/dv_t before step t is walked (a template flag: the default
// instances keep their code).
template <typename scalar_t, bool HARD, bool DETACH, int SG, int64_t W, bool FULL, bool VSEQ>
SNNK_INLINE void bwd_tile_chunk(const LeakyBwdParams& p, int64_t n, int64_t tail_len, int64_t ci, const float* a,
                                const float* b, const float* c, const float* v0, float* grad_v, float* acc_decay,
                                float* acc_gain, float* acc_bias) {
  using E = CpuElem<scalar_t>;
  using storage = typename E::storage;
  const int64_t len = FULL ? W : tail_len;
  const storage* x = static_cast<const storage*>(p.x) + n;
  const storage* grad_s = static_cast<const storage*>(p.grad_spikes) + n;
  storage* grad_x = static_cast<storage*>(p.grad_x) + n;
  const int64_t N = p.N, T = p.T, chunk = p.chunk;
  const float v_th = p.v_threshold, v_reset = p.v_reset, sg_param = p.surrogate_param;
  const bool strict = p.strict;
  const bool need_decay = p.need_grad_decay, need_gain = p.need_grad_gain, need_bias = p.need_grad_bias;
  const bool keep_xv = need_decay || need_gain;
  const bool keep_gh = keep_xv || need_bias;
  const int64_t stash = min_i64(min_i64(chunk, kStash), T > 1 ? T : 1);
  // h, x and v_{t-1} of up to `stash` steps
  alignas(64) float hs[kStash * W], xs[kStash * W], vs[kStash * W];
  alignas(64) float v_chunk[W], v[W], grad_h[W];

  const int64_t t0 = ci * chunk;
  const int64_t clen = min_i64(chunk, T - t0);
  copy_f32(ci > 0 ? p.checkpoints + (ci - 1) * N + n : v0, len, v_chunk);
  const int64_t n_pieces = ceil_div(clen, stash);
  for (int64_t pi = n_pieces - 1; pi >= 0; --pi) {
    const int64_t s0 = t0 + pi * stash;
    const int64_t slen = min_i64(stash, t0 + clen - s0);
    copy_f32(v_chunk, len, v);
    for (int64_t t = t0; t < s0; ++t) {  // only when chunk > stash: advance to the piece's start
      fwd_step<scalar_t, HARD, false>(x + t * N, nullptr, a, b, c, v, len, v_th, v_reset, strict, 0, 0);
    }
    // Rebuild the piece's pre-reset potentials exactly as the forward did.
    for (int64_t k = 0; k < slen; ++k) {
      prefetch_ahead<W>(x + (s0 + k) * N, false);
      if (keep_xv) {
        recompute_step<scalar_t, HARD, true>(x + (s0 + k) * N, a, b, c, v, hs + k * W, xs + k * W, vs + k * W, len,
                                             v_th, v_reset, strict);
      } else {
        recompute_step<scalar_t, HARD, false>(x + (s0 + k) * N, a, b, c, v, hs + k * W, nullptr, nullptr, len, v_th,
                                              v_reset, strict);
      }
    }
    // Walk the piece backwards.
    for (int64_t k = slen - 1; k >= 0; --k) {
      const storage* gr = grad_s + (s0 + k) * N;
      storage* gxr = grad_x + (s0 + k) * N;
      prefetch_ahead<W>(gr, false);
      prefetch_ahead<W>(gxr, true);
      if constexpr (VSEQ) accumulate(grad_v, p.grad_v_seq + (s0 + k) * N + n, nullptr, len);  // dL/dv_t
      if (keep_gh) {
        walk_step<scalar_t, HARD, DETACH, SG, true>(hs + k * W, gr, gxr, a, b, grad_v, grad_h, len, v_th, v_reset,
                                                    sg_param, strict);
        if (need_decay) accumulate(acc_decay, grad_h, vs + k * W, len);
        if (need_gain) accumulate(acc_gain, grad_h, xs + k * W, len);
        if (need_bias) accumulate(acc_bias, grad_h, nullptr, len);
      } else {
        walk_step<scalar_t, HARD, DETACH, SG, false>(hs + k * W, gr, gxr, a, b, grad_v, nullptr, len, v_th, v_reset,
                                                     sg_param, strict);
      }
    }
  }
}

// Blocks [block_begin, block_end), in pieces of kLeakyCpuPiece neurons: per piece, chunks last to first; per
// chunk, tile by tile (at most 3 CHUNK rows stream at a time). The strict threshold is a run-time flag here (a
// template one would double the 2 x 2 x 8 instances per element type and instruction set, and measured no
// faster: bench/NOTES.md, "Eight surrogates"). VSEQ: the backward given dL/dv_seq (bwd_tile_chunk).
template <typename scalar_t, bool HARD, bool DETACH, int SG, bool VSEQ = false, int64_t W = kLeakyCpuBwdTile>
void bwd_blocks(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end) {
  constexpr int64_t BK = kLeakyCpuPiece;
  static_assert(BK % W == 0 && kLeakyCpuBlock % BK == 0, "a block is a whole number of pieces and tiles");
  alignas(64) float a[BK], b[BK], c[BK], v0[BK], grad_v[BK], acc_decay[BK], acc_gain[BK], acc_bias[BK];
  const int64_t end = min_i64(block_end * kLeakyCpuBlock, p.N);
  for (int64_t n0 = block_begin * kLeakyCpuBlock; n0 < end; n0 += BK) {
    const int64_t len = min_i64(BK, end - n0);
    load_piece(p, n0, len, a, b, c, v0);
    if (p.has_grad_v_final) {
      copy_f32(p.grad_v_final + n0, len, grad_v);
    } else {
      fill_f32(0.0f, len, grad_v);
    }
    fill_f32(0.0f, len, acc_decay);
    fill_f32(0.0f, len, acc_gain);
    fill_f32(0.0f, len, acc_bias);
    for (int64_t ci = ceil_div(p.T, p.chunk) - 1; ci >= 0; --ci) {
      for_tiles<W>(len, [&](auto full, int64_t i, int64_t w) {
        bwd_tile_chunk<scalar_t, HARD, DETACH, SG, W, decltype(full)::value, VSEQ>(
            p, n0 + i, w, ci, a + i, b + i, c + i, v0 + i, grad_v + i, acc_decay + i, acc_gain + i, acc_bias + i);
      });
    }
    if (p.need_grad_v_init) copy_f32(grad_v, len, p.grad_v_init + n0);
    if (p.need_grad_decay) copy_f32(acc_decay, len, p.grad_decay + n0);
    if (p.need_grad_gain) copy_f32(acc_gain, len, p.grad_gain + n0);
    if (p.need_grad_bias) copy_f32(acc_bias, len, p.grad_bias + n0);
  }
}

template <typename scalar_t>
void fwd_dispatch(const LeakyFwdParams& p, int64_t block_begin, int64_t block_end) {
  SNNK_BOOL_SWITCH(p.hard_reset, HARD, [&] {
    SNNK_BOOL_SWITCH(p.strict, STRICT, [&] {
      SNNK_BOOL_SWITCH(p.store_v_seq, VSEQ, [&] {
        if (p.T > kLeakyCpuGroup) {
          fwd_blocks<scalar_t, HARD, STRICT, kLeakyCpuBlock, VSEQ>(p, block_begin, block_end);
        } else {
          fwd_blocks<scalar_t, HARD, STRICT, kLeakyCpuPiece, VSEQ>(p, block_begin, block_end);
        }
      });
    });
  });
}

template <typename scalar_t>
void bwd_dispatch(const LeakyBwdParams& p, int64_t block_begin, int64_t block_end) {
  SNNK_BOOL_SWITCH(p.hard_reset, HARD, [&] {
    SNNK_BOOL_SWITCH(p.detach_reset, DETACH, [&] {
      SNNK_SURROGATE_SWITCH(p.surrogate_id, SG, [&] {
        SNNK_BOOL_SWITCH(p.has_grad_v_seq, VSEQ,
                         [&] { bwd_blocks<scalar_t, HARD, DETACH, SG, VSEQ>(p, block_begin, block_end); });
      });
    });
  });
}

}  // namespace SNNK_CPU_ISA
}  // namespace leaky_cpu
}  // namespace snnk
