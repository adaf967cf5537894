// CUDA device kernels of the leaky neuron family: fused multi-step forward and recompute backward.
// Pure device code: no torch, no std headers, so it compiles under nvcc and under NVRTC.
//
// Semantics: snnkernels/ops/leaky.py (schemas, checkpoint contract) and docs/neuron.md; the kernels do
// what snnkernels/kernels/triton/leaky.py does, operation for operation.
//
// Layout: x / spikes / grad_spikes / grad_x / v_seq / grad_v_seq are [T, N] (element (t, n) at t * N + n);
// per-neuron arrays are [N]; checkpoints are [cdiv(T, chunk) - 1, N] fp32, row i = the state entering step
// (i + 1) * chunk. A neuron's channel is (n / S) % C. All states and accumulations are fp32.
//
// Threads: one thread owns VEC consecutive neurons and walks the whole time axis with their state in
// registers. With kVectorized set (N % VEC == 0 and all pointers 16-byte aligned) each row access is one
// VEC * sizeof(scalar_t)-byte load/store; otherwise element by element with a bound check. Launch with at
// most kLeakyMaxThreads threads per block and cdiv(cdiv(N, VEC), threads) blocks.
//
// Template parameters:
//   scalar_t      float, snnk::half_t or snnk::bf16_t (element type of x, spikes, gradients)
//   SG_ID         surrogate id 0..7 (snnkernels/surrogate.h), or -1: the `surrogate_id` argument
//   CHUNK         forward: steps whose loads are issued together; backward: steps stashed in registers.
//                 Any run-time `chunk` works with any CHUNK (a backward chunk longer than CHUNK is walked
//                 in CHUNK-step pieces, each recomputed from the chunk's checkpoint); chunk == CHUNK is the
//                 Triton kernels' schedule.
//   VEC           neurons per thread
//   STATIC_MASK / STATIC_FLAGS   which options (snnk::LeakyFlag bits) are compile-time constants, and
//                 their values; the others come from the run-time `flags` argument (leaky_flags.h).
//
// Run-time compilation (CuPy / NVRTC): templates plus name expressions, no extern "C" wrappers, e.g.
//   mod = cupy.RawModule(code='#include "leaky/leaky_kernel.cuh"\n',
//                        options=('-I<repo>/csrc/include', '-I<repo>/csrc', '--std=c++17', '-fmad=false'),
//                        name_expressions=['snnk::leaky_fwd_kernel<float, 8, 4, 0x7fffu, 0x4050u>'])
//   (mask 0x7fff: options 0..14 fixed; 0x4050 = kHardReset | kTraining | kVectorized; bits 15 and 16, kStoreVSeq
//   and kHasGradVSeq, then come from `flags`)
//   k = mod.get_function('snnk::leaky_fwd_kernel<float, 8, 4, 0x7fffu, 0x4050u>')
// Pass scalars with their exact C types (numpy.float32, numpy.int64 for `long long`, numpy.uint32 for
// flags, numpy.int32 for an int setting): CuPy sends a Python float as a double. The settings passed as
// values are SNNK_LEAKY_*_KERNEL_SCALARS (leaky_args.h, generated; leaky_settings.kernel_scalars in Python).
// Null pointers for absent optional arrays are fine (0); they are never dereferenced when their flag is off.
#pragma once

#include "snnkernels/convert.h"
#include "snnkernels/leaky_flags.h"
#include "snnkernels/leaky_math.h"
#include "snnkernels/surrogate.h"

namespace snnk {

constexpr int kLeakyMaxThreads = 256;

namespace leaky_detail {

// VEC elements moved as one access (16-byte aligned at most; a 32-byte pack is two 16-byte accesses).
template <typename E, int VEC>
struct alignas(sizeof(E) * VEC > 16 ? 16 : sizeof(E) * VEC) Pack {
  E v[VEC];
};

template <typename E, int VEC>
__device__ __forceinline__ Pack<E, VEC> load_pack(const E* __restrict__ p, long long base, long long n,
                                                  bool vectorized) {
  Pack<E, VEC> r;
  if (vectorized) {
    r = *reinterpret_cast<const Pack<E, VEC>*>(p + base);
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      if (base + j < n) {
        r.v[j] = p[base + j];
      } else {
        r.v[j] = from_float<E>(0.0f);
      }
    }
  }
  return r;
}

template <typename E, int VEC>
__device__ __forceinline__ void store_pack(E* __restrict__ p, long long base, long long n, bool vectorized,
                                           const Pack<E, VEC>& r) {
  if (vectorized) {
    *reinterpret_cast<Pack<E, VEC>*>(p + base) = r;
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      if (base + j < n) p[base + j] = r.v[j];
    }
  }
}

template <int VEC>
__device__ __forceinline__ void load_f32(const float* __restrict__ p, long long base, long long n, bool vectorized,
                                         float (&out)[VEC]) {
  const Pack<float, VEC> r = load_pack<float, VEC>(p, base, n, vectorized);
#pragma unroll
  for (int j = 0; j < VEC; ++j) out[j] = r.v[j];
}

template <int VEC>
__device__ __forceinline__ void store_f32(float* __restrict__ p, long long base, long long n, bool vectorized,
                                          const float (&in)[VEC]) {
  Pack<float, VEC> r;
#pragma unroll
  for (int j = 0; j < VEC; ++j) r.v[j] = in[j];
  store_pack<float, VEC>(p, base, n, vectorized, r);
}

// a / b for b > 0 without the 64-bit division subroutine: 32-bit hardware division when both fit, else shift and
// subtract inline (tensors of 2^32 neurons a step). A kernel that calls a subroutine saves registers around the
// call on the stack (ptxas counts those as spills; bench/NOTES.md "CUDA spills: the 64-bit division subroutine").
__device__ __forceinline__ unsigned long long udiv64(unsigned long long a, unsigned long long b) {
  if (((a | b) >> 32) == 0) return static_cast<unsigned int>(a) / static_cast<unsigned int>(b);
  unsigned long long q = 0, r = 0;
  for (int i = 63; i >= 0; --i) {
    r = (r << 1) | ((a >> i) & 1ull);
    if (r >= b) {
      r -= b;
      q |= 1ull << i;
    }
  }
  return q;
}

// Channels of the thread's VEC consecutive neurons: (n / S) % C, with one 64-bit division and one
// remainder for the first neuron and increments after it.
template <int VEC>
__device__ __forceinline__ void neuron_channels(long long base, long long S, long long C, long long (&ch)[VEC]) {
  const unsigned long long us = static_cast<unsigned long long>(S);
  const unsigned long long uc = static_cast<unsigned long long>(C);
  const unsigned long long q = udiv64(static_cast<unsigned long long>(base), us);
  unsigned long long r = static_cast<unsigned long long>(base) - q * us;
  unsigned long long c = q - udiv64(q, uc) * uc;
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    ch[j] = static_cast<long long>(c);
    if (++r == us) {
      r = 0;
      if (++c == uc) c = 0;
    }
  }
}

// A per-channel coefficient for each of the thread's neurons, or the scalar. Neurons past N get channel
// values of real neurons (the channel index stays in range) and are never stored.
template <int VEC>
__device__ __forceinline__ void load_coefficient(bool is_tensor, const float* __restrict__ t, float value,
                                                 const long long (&ch)[VEC], float (&out)[VEC]) {
#pragma unroll
  for (int j = 0; j < VEC; ++j) out[j] = is_tensor ? t[ch[j]] : value;
}

// The start of a neuron walk, shared by the forward and the backward: the VEC neurons' coefficients
// (a = decay, b = gain, c = bias: their channel's tensor entry or the scalar) and their state v_0 (v_init, or
// v_init_value everywhere).
template <int VEC>
__device__ __forceinline__ void load_start(bool decay_is_t, bool gain_is_t, bool bias_is_t, bool has_v_init,
                                           bool vectorized, long long base, long long N, long long S, long long C,
                                           const float* __restrict__ decay_t, const float* __restrict__ gain_t,
                                           const float* __restrict__ bias_t, const float* __restrict__ v_init,
                                           float decay, float gain, float bias, float v_init_value,
                                           float (&a)[VEC], float (&b)[VEC], float (&c)[VEC], float (&v)[VEC]) {
  long long ch[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) ch[j] = 0;
  if (decay_is_t || gain_is_t || bias_is_t) neuron_channels<VEC>(base, S, C, ch);
  load_coefficient<VEC>(decay_is_t, decay_t, decay, ch, a);
  load_coefficient<VEC>(gain_is_t, gain_t, gain, ch, b);
  load_coefficient<VEC>(bias_is_t, bias_t, bias, ch, c);
  if (has_v_init) {
    load_f32<VEC>(v_init, base, N, vectorized, v);
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) v[j] = v_init_value;
  }
}

__device__ __forceinline__ long long min_ll(long long a, long long b) { return a < b ? a : b; }

}  // namespace leaky_detail

// Forward. Writes spikes (scalar_t, exactly 0 or 1), and when asked the final state, the checkpoints and the
// membrane sequence (kStoreVSeq: v_seq[t] = the state after step t's reset).
template <typename scalar_t, int CHUNK, int VEC, unsigned int STATIC_MASK, unsigned int STATIC_FLAGS>
__global__ void __launch_bounds__(kLeakyMaxThreads)
leaky_fwd_kernel(const scalar_t* __restrict__ x,    // [T, N]
                 const float* __restrict__ v_init,  // [N] if kHasVInit
                 const float* __restrict__ decay_t,  // [C] if kDecayT
                 const float* __restrict__ gain_t,   // [C] if kGainT
                 const float* __restrict__ bias_t,   // [C] if kBiasT
                 scalar_t* __restrict__ spikes,      // [T, N] out
                 float* __restrict__ v_final,        // [N] out if kStoreFinal
                 float* __restrict__ checkpoints,    // [cdiv(T, chunk) - 1, N] out if kTraining
                 float* __restrict__ v_seq,          // [T, N] out if kStoreVSeq
                 long long T, long long N, long long S, long long C,
                 SNNK_LEAKY_FWD_KERNEL_SCALARS,  // float decay, ..., v_init_value (generated, leaky_args.h)
                 long long chunk, unsigned int flags) {
  using namespace leaky_detail;
  static_assert(CHUNK >= 1 && VEC >= 1, "CHUNK and VEC must be positive");
#define SNNK_FLAG(F) (::snnk::leaky_flag<F, STATIC_MASK, STATIC_FLAGS>(flags))
  const bool vectorized = SNNK_FLAG(kVectorized);
  const bool hard_reset = SNNK_FLAG(kHardReset);
  const bool strict = SNNK_FLAG(kStrict);
  const long long base = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;
  if (base >= N) return;
  // before the loads: nothing else is live across the division's (rare) 64-bit path
  const long long n_chunks = static_cast<long long>(udiv64(T + chunk - 1, chunk));

  float a[VEC], b[VEC], c[VEC], v[VEC];
  load_start<VEC>(SNNK_FLAG(kDecayT), SNNK_FLAG(kGainT), SNNK_FLAG(kBiasT), SNNK_FLAG(kHasVInit), vectorized, base, N,
                  S, C, decay_t, gain_t, bias_t, v_init, decay, gain, bias, v_init_value, a, b, c, v);
  const scalar_t one = from_float<scalar_t>(1.0f);
  const scalar_t zero = from_float<scalar_t>(0.0f);

  for (long long ci = 0; ci < n_chunks; ++ci) {
    const long long t0 = ci * chunk;
    // chunk 0 restarts from v_init, so its state is not stored
    if (SNNK_FLAG(kTraining) && ci > 0) store_f32<VEC>(checkpoints + (ci - 1) * N, base, N, vectorized, v);
    const long long t_end = min_ll(t0 + chunk, T);
    for (long long t = t0; t < t_end; t += CHUNK) {
      Pack<scalar_t, VEC> xs[CHUNK];
      // steps of this group, 1..CHUNK, as a 32-bit count: ptxas rebuilds each step's test from it instead of
      // keeping CHUNK predicates live across the group (bench/NOTES.md "CUDA spills: the 64-bit division
      // subroutine")
      const int steps = static_cast<int>(min_ll(CHUNK, t_end - t));
#pragma unroll
      for (int k = 0; k < CHUNK; ++k) {
        if (k < steps) xs[k] = load_pack<scalar_t, VEC>(x + (t + k) * N, base, N, vectorized);
      }
#pragma unroll
      for (int k = 0; k < CHUNK; ++k) {
        if (k < steps) {
          Pack<scalar_t, VEC> s;
#pragma unroll
          for (int j = 0; j < VEC; ++j) {
            const float h = leaky_charge(a[j], v[j], b[j], to_float(xs[k].v[j]), c[j]);
            const bool spike = leaky_fire(h, v_threshold, strict);
            s.v[j] = spike ? one : zero;
            v[j] = leaky_reset(h, spike, v_threshold, v_reset, hard_reset);
          }
          store_pack<scalar_t, VEC>(spikes + (t + k) * N, base, N, vectorized, s);
          if (SNNK_FLAG(kStoreVSeq)) store_f32<VEC>(v_seq + (t + k) * N, base, N, vectorized, v);
        }
      }
    }
  }
  if (SNNK_FLAG(kStoreFinal)) store_f32<VEC>(v_final, base, N, vectorized, v);
#undef SNNK_FLAG
}

// Backward. Rebuilds each chunk's h_t from its checkpoint (chunk 0 from v_init) exactly as the forward
// computed it, then walks the chunk backwards:
//   dL/dh_t = dL/ds_t * sg_t + dL/dv_t * dv_t/dh_t;   dL/dv_{t-1} = a * dL/dh_t;   dL/dx_t = b * dL/dh_t
// and sums dL/dh_t * v_{t-1}, dL/dh_t * x_t and dL/dh_t per neuron for the coefficient gradients. With
// kHasGradVSeq, dL/dv_t also receives grad_v_seq[t] before step t is walked.
//
// Blocks an SM: left to ptxas (0), except the run-time surrogate with one neuron a thread: ptxas would spill a
// 64-bit value to stay at 64 registers (4 blocks); 3 blocks (<= 80 registers) keep it in a register
// (bench/NOTES.md "The last CUDA spills").
template <typename scalar_t, int SG_ID, int CHUNK, int VEC, unsigned int STATIC_MASK, unsigned int STATIC_FLAGS>
__global__ void __launch_bounds__(kLeakyMaxThreads, (SG_ID < 0 && VEC == 1) ? 3 : 0)
leaky_bwd_kernel(const scalar_t* __restrict__ grad_spikes,  // [T, N] dL/ds
                 const float* __restrict__ grad_v_final,    // [N] dL/dv_T if kHasGradVFinal
                 const scalar_t* __restrict__ x,            // [T, N] the forward's input
                 const float* __restrict__ v_init,          // [N] if kHasVInit
                 const float* __restrict__ checkpoints,     // [cdiv(T, chunk) - 1, N]
                 const float* __restrict__ decay_t,         // [C] if kDecayT
                 const float* __restrict__ gain_t,          // [C] if kGainT
                 const float* __restrict__ bias_t,          // [C] if kBiasT
                 scalar_t* __restrict__ grad_x,             // [T, N] out
                 float* __restrict__ grad_v_init,           // [N] out if kStoreGradVInit
                 float* __restrict__ grad_decay,            // [N] out if kNeedGradDecay
                 float* __restrict__ grad_gain,             // [N] out if kNeedGradGain
                 float* __restrict__ grad_bias,             // [N] out if kNeedGradBias
                 const float* __restrict__ grad_v_seq,      // [T, N] dL/dv_seq if kHasGradVSeq
                 long long T, long long N, long long S, long long C,
                 SNNK_LEAKY_BWD_KERNEL_SCALARS,  // ..., int surrogate_id, float surrogate_param (generated)
                 long long chunk, unsigned int flags) {
  using namespace leaky_detail;
  static_assert(CHUNK >= 1 && VEC >= 1, "CHUNK and VEC must be positive");
#define SNNK_FLAG(F) (::snnk::leaky_flag<F, STATIC_MASK, STATIC_FLAGS>(flags))
  const bool vectorized = SNNK_FLAG(kVectorized);
  const bool hard_reset = SNNK_FLAG(kHardReset);
  const bool strict = SNNK_FLAG(kStrict);
  const bool detach_reset = SNNK_FLAG(kDetachReset);
  const bool need_decay = SNNK_FLAG(kNeedGradDecay);
  const bool need_gain = SNNK_FLAG(kNeedGradGain);
  const bool need_bias = SNNK_FLAG(kNeedGradBias);
  const long long base = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;
  if (base >= N) return;
  // before the loads: nothing else is live across the division's (rare) 64-bit path
  const long long n_chunks = static_cast<long long>(udiv64(T + chunk - 1, chunk));

  float a[VEC], b[VEC], c[VEC], v0[VEC], grad_v[VEC];
  float acc_decay[VEC], acc_gain[VEC], acc_bias[VEC];
  // v_init is read when the walk reaches chunk 0 (the last), not held across the others: fewer live registers
  load_start<VEC>(SNNK_FLAG(kDecayT), SNNK_FLAG(kGainT), SNNK_FLAG(kBiasT), false, vectorized, base, N, S, C, decay_t,
                  gain_t, bias_t, v_init, decay, gain, bias, v_init_value, a, b, c, v0);
  if (SNNK_FLAG(kHasGradVFinal)) {
    load_f32<VEC>(grad_v_final, base, N, vectorized, grad_v);
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) grad_v[j] = 0.0f;
  }
#pragma unroll
  for (int j = 0; j < VEC; ++j) acc_decay[j] = acc_gain[j] = acc_bias[j] = 0.0f;

  // Counted down, so n_chunks is not live across the loop; the pieces below walk s0 itself rather than a piece
  // index (fewer 64-bit values live across them: bench/NOTES.md "The last CUDA spills").
  for (long long ci = n_chunks - 1; ci >= 0; --ci) {
    const long long t0 = ci * chunk;
    const long long t_end = min_ll(t0 + chunk, T);
    float v_chunk[VEC];
    if (ci > 0) {
      load_f32<VEC>(checkpoints + (ci - 1) * N, base, N, vectorized, v_chunk);
    } else if (SNNK_FLAG(kHasVInit)) {
      load_f32<VEC>(v_init, base, N, vectorized, v_chunk);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) v_chunk[j] = v0[j];
    }
    // Pieces of at most CHUNK steps, last piece first; each restarts from the chunk's state. The last starts at
    // t0 + floor((t_end - t0 - 1) / CHUNK) * CHUNK (t_end > t0: an unsigned division, no sign fix-up).
    const long long last = static_cast<long long>(static_cast<unsigned long long>(t_end - t0 - 1) / CHUNK) * CHUNK;
    for (long long s0 = t0 + last; s0 >= t0; s0 -= CHUNK) {
      const int s_len = static_cast<int>(min_ll(CHUNK, t_end - s0));
      float v[VEC];
#pragma unroll
      for (int j = 0; j < VEC; ++j) v[j] = v_chunk[j];
      for (long long t = t0; t < s0; ++t) {  // only when chunk > CHUNK: advance to the piece's start
        const Pack<scalar_t, VEC> xt = load_pack<scalar_t, VEC>(x + t * N, base, N, vectorized);
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
          const float h = leaky_charge(a[j], v[j], b[j], to_float(xt.v[j]), c[j]);
          v[j] = leaky_reset(h, leaky_fire(h, v_threshold, strict), v_threshold, v_reset, hard_reset);
        }
      }
      float v_start[VEC];
#pragma unroll
      for (int j = 0; j < VEC; ++j) v_start[j] = v[j];

      Pack<scalar_t, VEC> xs[CHUNK], gs[CHUNK];
      float hs[CHUNK][VEC];
#pragma unroll
      for (int k = 0; k < CHUNK; ++k) {
        if (k < s_len) {
          xs[k] = load_pack<scalar_t, VEC>(x + (s0 + k) * N, base, N, vectorized);
          gs[k] = load_pack<scalar_t, VEC>(grad_spikes + (s0 + k) * N, base, N, vectorized);
        }
      }
      // Rebuild the piece's pre-reset potentials exactly as the forward did.
#pragma unroll
      for (int k = 0; k < CHUNK; ++k) {
        if (k < s_len) {
#pragma unroll
          for (int j = 0; j < VEC; ++j) {
            const float h = leaky_charge(a[j], v[j], b[j], to_float(xs[k].v[j]), c[j]);
            hs[k][j] = h;
            v[j] = leaky_reset(h, leaky_fire(h, v_threshold, strict), v_threshold, v_reset, hard_reset);
          }
        }
      }
      // Walk the piece backwards.
#pragma unroll
      for (int k = CHUNK - 1; k >= 0; --k) {
        if (k < s_len) {
          if (SNNK_FLAG(kHasGradVSeq)) {  // dL/dv_t = a dL/dh_{t+1} (+ dL/dv_T) + dL/dv_seq[t]
            float gvs[VEC];
            load_f32<VEC>(grad_v_seq + (s0 + k) * N, base, N, vectorized, gvs);
#pragma unroll
            for (int j = 0; j < VEC; ++j) grad_v[j] = add_rn(grad_v[j], gvs[j]);
          }
          Pack<scalar_t, VEC> gx;
#pragma unroll
          for (int j = 0; j < VEC; ++j) {
            const float h = hs[k][j];
            const float grad_h = leaky_grad_h<SG_ID>(h, to_float(gs[k].v[j]), grad_v[j], v_threshold, v_reset,
                                                     surrogate_param, surrogate_id, hard_reset, strict, detach_reset);
            gx.v[j] = from_float<scalar_t>(mul_rn(grad_h, b[j]));
            grad_v[j] = mul_rn(grad_h, a[j]);
            if (need_decay) {
              // v_{t-1}: rebuilt from h_{t-1} rather than stashed, to save registers
              float v_prev = v_start[j];
              if (k > 0) {
                const float hp = hs[k > 0 ? k - 1 : 0][j];
                v_prev = leaky_reset(hp, leaky_fire(hp, v_threshold, strict), v_threshold, v_reset, hard_reset);
              }
              acc_decay[j] = add_rn(acc_decay[j], mul_rn(grad_h, v_prev));
            }
            if (need_gain) acc_gain[j] = add_rn(acc_gain[j], mul_rn(grad_h, to_float(xs[k].v[j])));
            if (need_bias) acc_bias[j] = add_rn(acc_bias[j], grad_h);
          }
          store_pack<scalar_t, VEC>(grad_x + (s0 + k) * N, base, N, vectorized, gx);
        }
      }
    }
  }
  if (SNNK_FLAG(kStoreGradVInit)) store_f32<VEC>(grad_v_init, base, N, vectorized, grad_v);
  if (need_decay) store_f32<VEC>(grad_decay, base, N, vectorized, acc_decay);
  if (need_gain) store_f32<VEC>(grad_gain, base, N, vectorized, acc_gain);
  if (need_bias) store_f32<VEC>(grad_bias, base, N, vectorized, acc_bias);
#undef SNNK_FLAG
}

}  // namespace snnk
