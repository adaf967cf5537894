// Host API of the leaky-neuron ops: argument checks, output allocation, params (shared with the CUDA
// entry points in leaky_api_cuda.cpp), and the CPU implementations registered for
// snnkernels::leaky_fwd_native / snnkernels::leaky_bwd_native (schemas in csrc/registration.cpp).
#include "leaky/leaky_api.h"

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "leaky/leaky_cpu.h"
#include "snnkernels/checks.h"
#include "snnkernels/surrogate.h"

namespace snnk {
namespace api {
namespace {

int64_t neurons_per_step(const at::Tensor& x) {
  int64_t n = 1;
  for (int64_t d = 1; d < x.dim(); ++d) n *= x.size(d);
  return n;
}

// x itself if its memory is a dense [T, N] walk (contiguous, or each step channels-last as convolutions
// under torch.compile produce), else a contiguous copy: time_major_dense in snnkernels/ops/leaky.py.
at::Tensor time_major_dense(const at::Tensor& x) {
  if (x.is_contiguous()) return x;
  if ((x.dim() == 5 || x.dim() == 6) && x.size(0) > 0) {
    const auto fmt = x.dim() == 5 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::ChannelsLast3d;
    if (x.stride(0) == neurons_per_step(x) && x[0].is_contiguous(fmt)) return x;
  }
  return x.contiguous();
}

// The layout of one step of the walk: xd[0], or a contiguous [x.shape[1:]] when T = 0.
at::Tensor step_layout(const at::Tensor& xd) {
  return xd.size(0) > 0 ? xd[0] : at::empty(xd.sizes().slice(1), xd.options());
}

// `t` converted to `dtype` with the strides of `like` (same shape); `t` itself when it already is.
at::Tensor as_layout(const at::Tensor& t, const at::Tensor& like, at::ScalarType dtype) {
  if (t.scalar_type() == dtype && t.strides() == like.strides()) return t;
  return at::empty_like(like, like.options().dtype(dtype)).copy_(t);
}

// An output allocated as the fake function says, plus the buffer the kernel writes (`layout` strides,
// `dtype` elements): the output itself whenever it already is that.
Output make_output(at::Tensor out, const at::Tensor& layout, at::ScalarType dtype) {
  if (out.scalar_type() == dtype && out.strides() == layout.strides()) return {out, out};
  return {out, at::empty_like(layout, layout.options().dtype(dtype))};
}

ElementType element_type(at::ScalarType t) {
  switch (t) {
    case at::kHalf:
      return ElementType::kFloat16;
    case at::kBFloat16:
      return ElementType::kBFloat16;
    default:
      return ElementType::kFloat32;
  }
}

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1, "snnkernels: x must have shape [T, ...], got a 0-d tensor");
  const auto t = x.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kHalf || t == at::kBFloat16,
              "snnkernels: the native leaky kernels take x of dtype float32, float16 or bfloat16 (state in fp32), "
              "got ", t, "; use backend='torch' for other dtypes");
}

void check_options(int64_t chunk, int64_t surrogate_id) {
  TORCH_CHECK(chunk >= 1, "snnkernels: chunk (steps per checkpoint) must be >= 1, got ", chunk);
  TORCH_CHECK(surrogate_id >= 0 && surrogate_id < kNumSurrogates,
              "snnkernels: surrogate_id must be 0..7 (ATan, Sigmoid, Triangle, Rectangle, PiecewiseExp, SoftSign, "
              "SuperSpike, Erf), got ",
              surrogate_id);
}

// A [x.shape[1:]] state argument (v_init, grad_v_final) as fp32 in the layout of one step of the walk.
at::Tensor prepare_state(const at::Tensor& t, const at::Tensor& x, const at::Tensor& step, const char* name,
                         std::vector<at::Tensor>& keep) {
  CHECK_DEVICE(t, x.device(), name);
  CHECK_FLOATING(t, name);
  CHECK_SHAPE(t, x.sizes().slice(1), name);
  at::Tensor r = as_layout(t, step, at::kFloat);
  keep.push_back(r);
  return r;
}

struct Coefficients {
  const float* ptr[3] = {nullptr, nullptr, nullptr};
  int64_t S = 1, C = 1;
};

// Coefficient tensors: fp32 [C'] with C' = 1 or C = x.shape[2] (per channel, dim 2 of [T, B, C, ...]);
// one-element tensors next to per-channel ones are broadcast to C. The channel stride S comes from the
// walked memory: x.stride(2) (1 for channels-last steps).
Coefficients prepare_coefficients(const at::Tensor& x, const at::Tensor& xd, const OptTensor& decay_t,
                                  const OptTensor& gain_t, const OptTensor& bias_t, std::vector<at::Tensor>& keep) {
  const OptTensor* ts[3] = {&decay_t, &gain_t, &bias_t};
  const char* names[3] = {"decay_t", "gain_t", "bias_t"};
  Coefficients r;
  for (const OptTensor* t : ts) {
    if (t->has_value()) r.C = std::max<int64_t>(r.C, (*t)->numel());
  }
  if (r.C > 1) {
    TORCH_CHECK(x.dim() >= 3 && x.size(2) == r.C, "snnkernels: per-channel coefficient tensors have C = ", r.C,
                " entries, so x must have shape [T, B, C, ...] with x.shape[2] == ", r.C, ", got ", x.sizes());
    r.S = xd.stride(2);
  }
  for (int i = 0; i < 3; ++i) {
    if (!ts[i]->has_value()) continue;
    const at::Tensor& t = **ts[i];
    CHECK_DEVICE(t, x.device(), names[i]);
    CHECK_FLOATING(t, names[i]);
    TORCH_CHECK(t.numel() == 1 || t.numel() == r.C, "snnkernels: ", names[i], " must have 1 or C = ", r.C,
                " elements (all coefficient tensors share C), got ", t.numel());
    at::Tensor f = t.to(at::kFloat).reshape({-1});
    if (f.numel() != r.C) f = f.expand({r.C});
    f = f.contiguous();
    keep.push_back(f);
    r.ptr[i] = f.data_ptr<float>();
  }
  return r;
}

}  // namespace

FwdCall prepare_fwd(SNNK_LEAKY_FWD_PARAMS) {
  SNNK_LEAKY_FWD_UNREAD
  check_input(x);
  check_options(chunk, surrogate_id);
  const int64_t T = x.size(0), N = neurons_per_step(x);
  TORCH_CHECK(T >= 1 || !store_final_state, "snnkernels: store_final_state needs at least one time step, got x of shape ",
              x.sizes());
  FwdCall call;
  const at::Tensor xd = time_major_dense(x);
  const at::Tensor step = step_layout(xd);
  call.keep_alive.push_back(xd);
  const auto f32 = x.options().dtype(at::kFloat);

  // outputs: new_fwd_outputs in snnkernels/ops/leaky.py
  call.spikes = make_output(at::empty_like(x), xd, x.scalar_type());
  call.v_final = store_final_state ? make_output(at::empty_like(x[0], f32), step, at::kFloat)
                                   : Output{at::empty({0}, f32), at::Tensor()};
  call.checkpoints = training ? at::empty({leaky_num_checkpoints(T, chunk), N}, f32) : at::empty({0}, f32);
  call.v_seq = store_v_seq ? make_output(at::empty_like(x, f32), xd, at::kFloat)
                           : Output{at::empty({0}, f32), at::Tensor()};

  LeakyFwdParams& p = call.p;
  if (v_init.has_value()) {
    p.v_init = prepare_state(*v_init, x, step, "v_init", call.keep_alive).data_ptr<float>();
    p.has_v_init = true;
  }
  const Coefficients co = prepare_coefficients(x, xd, decay_t, gain_t, bias_t, call.keep_alive);
  p.x = xd.data_ptr();
  p.decay_t = co.ptr[0];
  p.gain_t = co.ptr[1];
  p.bias_t = co.ptr[2];
  p.spikes = call.spikes.buffer.data_ptr();
  p.v_final = store_final_state ? call.v_final.buffer.data_ptr<float>() : nullptr;
  p.checkpoints = training ? call.checkpoints.data_ptr<float>() : nullptr;
  p.v_seq = store_v_seq ? call.v_seq.buffer.data_ptr<float>() : nullptr;
  p.T = T;
  p.N = N;
  p.S = co.S;
  p.C = co.C;
  p.chunk = chunk;
  SNNK_LEAKY_FWD_FILL_SCALARS(p)
  p.dtype = element_type(x.scalar_type());
  return call;
}

BwdCall prepare_bwd(SNNK_LEAKY_BWD_PARAMS) {
  SNNK_LEAKY_BWD_UNREAD
  check_input(x);
  check_options(chunk, surrogate_id);
  const int64_t T = x.size(0), N = neurons_per_step(x);
  TORCH_CHECK(T >= 1 || !need_grad_v_init, "snnkernels: need_grad_v_init needs at least one time step, got x of shape ",
              x.sizes());
  CHECK_DEVICE(grad_spikes, x.device(), "grad_spikes");
  CHECK_FLOATING(grad_spikes, "grad_spikes");
  CHECK_SHAPE(grad_spikes, x.sizes(), "grad_spikes");
  CHECK_DEVICE(checkpoints, x.device(), "checkpoints");
  CHECK_DTYPE(checkpoints, at::kFloat, "checkpoints");
  const int64_t n_ckpt = leaky_num_checkpoints(T, chunk);
  if (n_ckpt > 0) {
    TORCH_CHECK(checkpoints.dim() == 2 && checkpoints.size(0) == n_ckpt && checkpoints.size(1) == N,
                "snnkernels: checkpoints must have shape [cdiv(T, chunk) - 1, N] = [", n_ckpt, ", ", N, "] (from a ",
                "forward with training=True and the same chunk = ", chunk, "), got ", checkpoints.sizes());
    CHECK_CONTIGUOUS(checkpoints, "checkpoints");
  }

  BwdCall call;
  const at::Tensor xd = time_major_dense(x);
  const at::Tensor step = step_layout(xd);
  const auto f32 = x.options().dtype(at::kFloat);
  // Gradients of another dtype than x: run in fp32 (x upcast exactly, grad_x rounded once at the end,
  // as the Triton kernel's store does).
  const at::ScalarType work = grad_spikes.scalar_type() == x.scalar_type() ? x.scalar_type() : at::kFloat;
  const at::Tensor xw = as_layout(xd, xd, work);
  const at::Tensor gs = as_layout(grad_spikes, xd, work);
  call.keep_alive.insert(call.keep_alive.end(), {xd, xw, gs, checkpoints});

  // outputs: new_bwd_outputs in snnkernels/ops/leaky.py
  call.grad_x = make_output(at::empty_like(x), xd, work);
  call.grad_v_init = need_grad_v_init ? make_output(at::empty_like(x[0], f32), step, at::kFloat)
                                      : Output{at::empty({0}, f32), at::Tensor()};
  call.grad_decay = at::empty({need_grad_decay ? N : 0}, f32);
  call.grad_gain = at::empty({need_grad_gain ? N : 0}, f32);
  call.grad_bias = at::empty({need_grad_bias ? N : 0}, f32);

  LeakyBwdParams& p = call.p;
  if (grad_v_final.has_value()) {
    p.grad_v_final = prepare_state(*grad_v_final, x, step, "grad_v_final", call.keep_alive).data_ptr<float>();
    p.has_grad_v_final = true;
  }
  if (v_init.has_value()) {
    p.v_init = prepare_state(*v_init, x, step, "v_init", call.keep_alive).data_ptr<float>();
    p.has_v_init = true;
  }
  if (grad_v_seq.has_value()) {
    CHECK_DEVICE(*grad_v_seq, x.device(), "grad_v_seq");
    CHECK_FLOATING(*grad_v_seq, "grad_v_seq");
    CHECK_SHAPE(*grad_v_seq, x.sizes(), "grad_v_seq");
    const at::Tensor gvs = as_layout(*grad_v_seq, xd, at::kFloat);  // fp32, walked as x's [T, N]
    call.keep_alive.push_back(gvs);
    p.grad_v_seq = gvs.data_ptr<float>();
    p.has_grad_v_seq = true;
  }
  const Coefficients co = prepare_coefficients(x, xd, decay_t, gain_t, bias_t, call.keep_alive);
  p.grad_spikes = gs.data_ptr();
  p.x = xw.data_ptr();
  p.checkpoints = n_ckpt > 0 ? checkpoints.data_ptr<float>() : nullptr;
  p.decay_t = co.ptr[0];
  p.gain_t = co.ptr[1];
  p.bias_t = co.ptr[2];
  p.grad_x = call.grad_x.buffer.data_ptr();
  p.grad_v_init = need_grad_v_init ? call.grad_v_init.buffer.data_ptr<float>() : nullptr;
  p.grad_decay = need_grad_decay ? call.grad_decay.data_ptr<float>() : nullptr;
  p.grad_gain = need_grad_gain ? call.grad_gain.data_ptr<float>() : nullptr;
  p.grad_bias = need_grad_bias ? call.grad_bias.data_ptr<float>() : nullptr;
  p.T = T;
  p.N = N;
  p.S = co.S;
  p.C = co.C;
  p.chunk = chunk;
  SNNK_LEAKY_BWD_FILL_SCALARS(p)
  p.dtype = element_type(work);
  return call;
}

}  // namespace api

namespace {

// Neuron-steps below which a call runs on one thread (threading costs more than it saves).
constexpr int64_t kMinParallelWork = int64_t{1} << 15;

int64_t block_grain(int64_t T) {
  return std::max<int64_t>(1, kMinParallelWork / std::max<int64_t>(1, T * kLeakyCpuBlock));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> leaky_fwd_native_cpu(SNNK_LEAKY_FWD_PARAMS) {
  TORCH_CHECK(x.device().is_cpu(), "snnkernels: leaky_fwd_native's CPU kernel got x on ", x.device());
  api::FwdCall call = api::prepare_fwd(SNNK_LEAKY_FWD_ARGS);
  const LeakyFwdParams& p = call.p;
  if (p.N > 0) {
    at::parallel_for(0, leaky_cpu_num_blocks(p.N), block_grain(p.T),
                     [&](int64_t b0, int64_t b1) { leaky_fwd_cpu_blocks(p, b0, b1); });
  }
  call.finish();
  return call.outputs();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> leaky_bwd_native_cpu(SNNK_LEAKY_BWD_PARAMS) {
  TORCH_CHECK(x.device().is_cpu(), "snnkernels: leaky_bwd_native's CPU kernel got x on ", x.device());
  api::BwdCall call = api::prepare_bwd(SNNK_LEAKY_BWD_ARGS);
  const LeakyBwdParams& p = call.p;
  if (p.N > 0) {
    at::parallel_for(0, leaky_cpu_num_blocks(p.N), block_grain(p.T),
                     [&](int64_t b0, int64_t b1) { leaky_bwd_cpu_blocks(p, b0, b1); });
  }
  call.finish();
  return call.outputs();
}

}  // namespace
}  // namespace snnk

TORCH_LIBRARY_IMPL(snnkernels, CPU, m) {
  m.impl("leaky_fwd_native", TORCH_FN(snnk::leaky_fwd_native_cpu));
  m.impl("leaky_bwd_native", TORCH_FN(snnk::leaky_bwd_native_cpu));
}
