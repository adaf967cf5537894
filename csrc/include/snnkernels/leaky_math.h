// The leaky neuron's per-element math, shared by the CPU core and the CUDA kernels (g++, nvcc, NVRTC).
// Equations: docs/neuron.md. Every operation is rounded separately (arith.h), in the order of the eager
// reference and of the Triton kernels (snnkernels/kernels/triton/leaky.py), so fp32 spikes and states
// agree bit for bit across backends.
#pragma once

#include "snnkernels/arith.h"
#include "snnkernels/surrogate.h"

namespace snnk {

// Where the charge below subtracts (v - v): kPerNeuron decides per element (a != 1); a caller that knows the
// answer for all its neurons fixes it at compile time, kAlways where every a != 1 (NaN included), kNever where
// every a == 1. The same bits as kPerNeuron: it would subtract (v - v) there, or h - 0, which is h.
enum class LeakTerm : int { kNever = 0, kAlways = 1, kPerNeuron = 2 };

// The fixed choice for neurons whose decay is a.
SNNK_INLINE LeakTerm leak_term_of(float a) { return a != 1.0f ? LeakTerm::kAlways : LeakTerm::kNever; }

// h_t = a * v_{t-1} + b * x_t + c, minus (v - v) where the neuron leaks (a != 1): v - v is +0 for a finite v and
// h - 0 is h bit for bit (-0 included), so finite states keep their bits; for v = +-inf it is NaN, as SpikingJelly's
// v + (x - (v - v_reset)) / tau gives, while IF (a = 1) keeps +-inf like SpikingJelly's v + x (docs/neuron.md
// "Non-finite values"). The same function in the forward and in the backward's recompute.
template <LeakTerm L>
SNNK_INLINE float leaky_charge_as(float a, float v, float b, float x, float c) {
  const float h = add_rn(add_rn(mul_rn(a, v), mul_rn(b, x)), c);
  if constexpr (L == LeakTerm::kNever) {
    return h;
  } else if constexpr (L == LeakTerm::kAlways) {
    return sub_rn(h, sub_rn(v, v));
  } else {
    return sub_rn(h, a != 1.0f ? sub_rn(v, v) : 0.0f);
  }
}

SNNK_INLINE float leaky_charge(float a, float v, float b, float x, float c) {
  return leaky_charge_as<LeakTerm::kPerNeuron>(a, v, b, x, c);
}

// H(d) at d = h - v_threshold: d >= 0, or d > 0 when strict. Written as mask logic rather than a choice
// between two comparisons, so that a run-time `strict` keeps GCC's loops vectorised (the CPU backward takes it
// at run time: half the template instances); the same value for every d, -0 and NaN included.
SNNK_INLINE bool leaky_fires(float d, bool strict) { return (d > 0.0f) | (!strict & (d == 0.0f)); }

// s_t = H(h_t - v_threshold)
SNNK_INLINE bool leaky_fire(float h, float v_threshold, bool strict) {
  return leaky_fires(sub_rn(h, v_threshold), strict);
}

// v_t: h * (1 - s) + v_reset * s (hard), or h - v_threshold * s (soft), as the eager reference (and
// SpikingJelly) computes it: for finite h the hard form is v_reset where it fired and h elsewhere, and an
// overflowed charge (h = inf) gives NaN there too instead of silently v_reset.
SNNK_INLINE float leaky_reset(float h, bool spike, float v_threshold, float v_reset, bool hard_reset) {
  const float s = spike ? 1.0f : 0.0f;
  return hard_reset ? add_rn(mul_rn(h, sub_rn(1.0f, s)), mul_rn(v_reset, s)) : sub_rn(h, mul_rn(v_threshold, s));
}

// dL/dh_t = dL/ds_t * sg_t + dL/dv_t * dv_t/dh_t, with
//   dv_t/dh_t = (1 - s_t) + (v_reset - h_t) * sg_t   (hard reset; the second term dropped when detached)
//             = 1 - v_threshold * sg_t               (soft reset; likewise)
// SG_ID: the surrogate id (0..7), or -1 to switch on `sg_id` at run time.
template <int SG_ID>
SNNK_INLINE float leaky_grad_h(float h, float grad_s, float grad_v, float v_threshold, float v_reset,
                               float sg_param, int sg_id, bool hard_reset, bool strict, bool detach_reset) {
  const float x = sub_rn(h, v_threshold);
  float sg;
  if constexpr (SG_ID < 0) {
    sg = surrogate_derivative_rt(sg_id, x, sg_param);
  } else {
    sg = surrogate_derivative<SG_ID>(x, sg_param);
  }
  const bool spike = leaky_fires(x, strict);
  float dv_dh;
  if (hard_reset) {
    const float keep = spike ? 0.0f : 1.0f;
    dv_dh = detach_reset ? keep : add_rn(keep, mul_rn(sub_rn(v_reset, h), sg));
  } else {
    dv_dh = detach_reset ? 1.0f : sub_rn(1.0f, mul_rn(v_threshold, sg));
  }
  return add_rn(mul_rn(grad_s, sg), mul_rn(grad_v, dv_dh));
}

}  // namespace snnk
