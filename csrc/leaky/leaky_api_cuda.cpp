// CUDA entry points of snnkernels::leaky_fwd_native / leaky_bwd_native: the shared checks and allocation
// of leaky_api.cpp, then the torch-free launchers of leaky_launch.cu on the current CUDA stream
// (c10::cuda::getCurrentCUDAStream, which at::cuda::getCurrentCUDAStream re-exports; the c10 header
// needs only cuda_runtime_api.h, not the cuBLAS headers that ATen/cuda/CUDAContext.h pulls in).
// Compiled only against a CUDA build of torch (a CPU build ships no c10/cuda headers).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "leaky/leaky_api.h"
#include "leaky/leaky_launch.h"

namespace snnk {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> leaky_fwd_native_cuda(
    const at::Tensor& x, const api::OptTensor& v_init, const api::OptTensor& decay_t, const api::OptTensor& gain_t,
    const api::OptTensor& bias_t, double decay, double gain, double bias, double v_threshold, double v_reset,
    double v_init_value, bool hard_reset, bool strict, bool detach_reset, int64_t surrogate_id,
    double surrogate_param, bool training, bool store_final_state, int64_t chunk, bool store_v_seq) {
  TORCH_CHECK(x.is_cuda(), "snnkernels: leaky_fwd_native's CUDA kernel got x on ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  api::FwdCall call = api::prepare_fwd(x, v_init, decay_t, gain_t, bias_t, decay, gain, bias, v_threshold, v_reset,
                                       v_init_value, hard_reset, strict, detach_reset, surrogate_id, surrogate_param,
                                       training, store_final_state, chunk, store_v_seq);
  if (call.p.N > 0) {
    const char* err = leaky_fwd_cuda(call.p, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == nullptr, "snnkernels: leaky_fwd_native CUDA launch failed: ", err);
  }
  call.finish();
  return call.outputs();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> leaky_bwd_native_cuda(
    const at::Tensor& grad_spikes, const api::OptTensor& grad_v_final, const at::Tensor& x,
    const api::OptTensor& v_init, const at::Tensor& checkpoints, const api::OptTensor& decay_t,
    const api::OptTensor& gain_t, const api::OptTensor& bias_t, double decay, double gain, double bias,
    double v_threshold, double v_reset, double v_init_value, bool hard_reset, bool strict, bool detach_reset,
    int64_t surrogate_id, double surrogate_param, int64_t chunk, bool need_grad_v_init, bool need_grad_decay,
    bool need_grad_gain, bool need_grad_bias, const api::OptTensor& grad_v_seq) {
  TORCH_CHECK(x.is_cuda(), "snnkernels: leaky_bwd_native's CUDA kernel got x on ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  api::BwdCall call = api::prepare_bwd(grad_spikes, grad_v_final, x, v_init, checkpoints, decay_t, gain_t, bias_t,
                                       decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict,
                                       detach_reset, surrogate_id, surrogate_param, chunk, need_grad_v_init,
                                       need_grad_decay, need_grad_gain, need_grad_bias, grad_v_seq);
  if (call.p.N > 0) {
    const char* err = leaky_bwd_cuda(call.p, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == nullptr, "snnkernels: leaky_bwd_native CUDA launch failed: ", err);
  }
  call.finish();
  return call.outputs();
}

}  // namespace
}  // namespace snnk

TORCH_LIBRARY_IMPL(snnkernels, CUDA, m) {
  m.impl("leaky_fwd_native", TORCH_FN(snnk::leaky_fwd_native_cuda));
  m.impl("leaky_bwd_native", TORCH_FN(snnk::leaky_bwd_native_cuda));
}
