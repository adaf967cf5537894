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

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> leaky_fwd_native_cuda(SNNK_LEAKY_FWD_PARAMS) {
  TORCH_CHECK(x.is_cuda(), "snnkernels: leaky_fwd_native's CUDA kernel got x on ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  api::FwdCall call = api::prepare_fwd(SNNK_LEAKY_FWD_ARGS);
  if (call.p.N > 0) {
    const char* err = leaky_fwd_cuda(call.p, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == nullptr, "snnkernels: leaky_fwd_native CUDA launch failed: ", err);
  }
  call.finish();
  return call.outputs();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> leaky_bwd_native_cuda(SNNK_LEAKY_BWD_PARAMS) {
  TORCH_CHECK(x.is_cuda(), "snnkernels: leaky_bwd_native's CUDA kernel got x on ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  api::BwdCall call = api::prepare_bwd(SNNK_LEAKY_BWD_ARGS);
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
