// Backward kernels of the leaky neuron for float elements (one file per element type: nvcc builds them in parallel).
#include "leaky/leaky_launch_impl.cuh"

namespace snnk {

const char* leaky_bwd_cuda_f32(const LeakyBwdParams& p, void* stream) {
  return leaky_launch::launch_bwd<float>(p, stream);
}

}  // namespace snnk
