// Backward kernels of the leaky neuron for snnk::bf16_t elements (one file per element type: nvcc builds them in parallel).
#include "leaky/leaky_launch_impl.cuh"

namespace snnk {

const char* leaky_bwd_cuda_bf16(const LeakyBwdParams& p, void* stream) {
  return leaky_launch::launch_bwd<snnk::bf16_t>(p, stream);
}

}  // namespace snnk
