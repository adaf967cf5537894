// Torch-side preparation shared by the CPU and CUDA entry points of the leaky-neuron ops: argument
// checks, output allocation (the shapes, dtypes and layouts of new_fwd_outputs / new_bwd_outputs in
// snnkernels/ops/leaky.py, which the fake functions report) and the filling of the torch-free params.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>
#include <vector>

#include "snnkernels/leaky_params.h"

namespace snnk {
namespace api {

using OptTensor = std::optional<at::Tensor>;

// A kernel output and the tensor the kernel writes into: the same tensor unless the output's layout is
// not the [T, N] walk of x (then the kernel fills `buffer` and finish() copies it over).
struct Output {
  at::Tensor out;
  at::Tensor buffer;
  void finish() {
    if (buffer.defined() && !buffer.is_same(out)) out.copy_(buffer);
  }
};

struct FwdCall {
  LeakyFwdParams p;
  Output spikes, v_final, v_seq;
  at::Tensor checkpoints;
  std::vector<at::Tensor> keep_alive;  // converted inputs the params point into
  void finish() {
    spikes.finish();
    v_final.finish();
    v_seq.finish();
  }
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> outputs() const {
    return {spikes.out, v_final.out, checkpoints, v_seq.out};
  }
};

struct BwdCall {
  LeakyBwdParams p;
  Output grad_x, grad_v_init;
  at::Tensor grad_decay, grad_gain, grad_bias;
  std::vector<at::Tensor> keep_alive;
  void finish() {
    grad_x.finish();
    grad_v_init.finish();
  }
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> outputs() const {
    return {grad_x.out, grad_v_init.out, grad_decay, grad_gain, grad_bias};
  }
};

// Arguments exactly as FWD_SCHEMA / BWD_SCHEMA order them (leaky_args.h, generated).
FwdCall prepare_fwd(SNNK_LEAKY_FWD_PARAMS);

BwdCall prepare_bwd(SNNK_LEAKY_BWD_PARAMS);

}  // namespace api
}  // namespace snnk
