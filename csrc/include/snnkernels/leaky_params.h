// Arguments of the leaky-neuron forward / backward as plain structs: raw pointers, sizes and scalars.
// Torch-free: shared by the torch API layer (csrc/leaky/leaky_api*.cpp), the CPU core and the CUDA launch
// functions. Semantics: snnkernels/ops/leaky.py (FWD_SCHEMA / BWD_SCHEMA) and docs/neuron.md. Every op argument
// that a pass reads (Arg.reads in snnkernels/ops/leaky_settings.py) is a member of its struct with the same name
// (python_tests/ops/test_neuron_settings.py checks it); flags() and the copies of the scalar settings into the
// members are generated (leaky_args.h).
//
// Memory is walked as [T, N]: element (t, n) of x / spikes / grad_spikes / grad_x is at t * N + n; the
// per-neuron arrays (v_init, v_final, grad_v_final, grad_v_init, partial sums) are [N] in the same neuron
// order (the layout of x[0]); checkpoints are [cdiv(T, chunk) - 1, N]; v_seq and grad_v_seq are [T, N] fp32. A
// neuron's channel is (n / S) % C; the coefficient tensors hold C fp32 values (C = 1 for per-tensor coefficients).
#pragma once

#include <cstdint>

#include "snnkernels/leaky_flags.h"

namespace snnk {

enum class ElementType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

inline int element_size(ElementType t) { return t == ElementType::kFloat32 ? 4 : 2; }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows of the checkpoint tensor: one per chunk after the first.
inline int64_t leaky_num_checkpoints(int64_t T, int64_t chunk) {
  const int64_t n = ceil_div(T, chunk) - 1;
  return n > 0 ? n : 0;
}

struct LeakyFwdParams {
  // inputs
  const void* x = nullptr;           // [T, N] of `dtype`
  const float* v_init = nullptr;     // [N] fp32, if has_v_init
  const float* decay_t = nullptr;    // [C] fp32, or null: use `decay`
  const float* gain_t = nullptr;     // [C] fp32, or null: use `gain`
  const float* bias_t = nullptr;     // [C] fp32, or null: use `bias`
  // outputs
  void* spikes = nullptr;            // [T, N] of `dtype`
  float* v_final = nullptr;          // [N] fp32, if store_final_state
  float* checkpoints = nullptr;      // [cdiv(T, chunk) - 1, N] fp32, if training
  // sizes
  int64_t T = 0, N = 0;
  int64_t S = 1;                     // channel stride (in neurons)
  int64_t C = 1;                     // channel count of the coefficient tensors
  int64_t chunk = 8;                 // steps per checkpoint
  float* v_seq = nullptr;            // [T, N] fp32 out, if store_v_seq: v_t after the reset of step t
  ElementType dtype = ElementType::kFloat32;
  // the settings (decay, ..., store_v_seq, has_v_init): generated
  SNNK_LEAKY_FWD_SETTING_MEMBERS

  unsigned int flags() const { return SNNK_LEAKY_FWD_FLAGS; }
};

struct LeakyBwdParams {
  // inputs
  const void* grad_spikes = nullptr;   // [T, N] of `dtype`
  const float* grad_v_final = nullptr; // [N] fp32, if has_grad_v_final
  const void* x = nullptr;             // [T, N] of `dtype`: the forward's input
  const float* v_init = nullptr;       // [N] fp32, if has_v_init
  const float* checkpoints = nullptr;  // [cdiv(T, chunk) - 1, N] fp32 from the training forward
  const float* decay_t = nullptr;
  const float* gain_t = nullptr;
  const float* bias_t = nullptr;
  // outputs
  void* grad_x = nullptr;              // [T, N] of `dtype`
  float* grad_v_init = nullptr;        // [N] fp32, if need_grad_v_init
  float* grad_decay = nullptr;         // [N] fp32 per-neuron sum_t dL/dh_t * v_{t-1}, if need_grad_decay
  float* grad_gain = nullptr;          // [N] fp32 per-neuron sum_t dL/dh_t * x_t, if need_grad_gain
  float* grad_bias = nullptr;          // [N] fp32 per-neuron sum_t dL/dh_t, if need_grad_bias
  // sizes
  int64_t T = 0, N = 0, S = 1, C = 1, chunk = 8;
  const float* grad_v_seq = nullptr;   // [T, N] fp32 dL/dv_t of the forward's v_seq, if has_grad_v_seq
  ElementType dtype = ElementType::kFloat32;
  // the settings (decay, ..., surrogate_id (Surrogate.id), need_grad_*, has_grad_v_final, ...): generated
  SNNK_LEAKY_BWD_SETTING_MEMBERS

  unsigned int flags() const { return SNNK_LEAKY_BWD_FLAGS; }
};

}  // namespace snnk
