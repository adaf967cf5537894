// Host launch functions of the CUDA leaky kernels: the forward for every element type, and the backward's
// dispatch to its per-type files. Torch-free (compiled by nvcc, linked into the torch extension).
#include "leaky/leaky_launch_impl.cuh"

namespace snnk {

const char* leaky_fwd_cuda(const LeakyFwdParams& p, void* stream) {
  return SNNK_ELEMENT_SWITCH(p.dtype, scalar_t, [&] { return leaky_launch::launch_fwd<scalar_t>(p, stream); });
}

const char* leaky_bwd_cuda(const LeakyBwdParams& p, void* stream) {
  switch (p.dtype) {
    case ElementType::kFloat16:
      return leaky_bwd_cuda_f16(p, stream);
    case ElementType::kBFloat16:
      return leaky_bwd_cuda_bf16(p, stream);
    default:
      return leaky_bwd_cuda_f32(p, stream);
  }
}

}  // namespace snnk
