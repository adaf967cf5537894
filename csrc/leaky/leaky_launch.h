// Torch-free host entry points of the CUDA leaky-neuron kernels (defined in leaky_launch.cu and
// leaky_bwd_*.cu, compiled by nvcc). Called by leaky_api_cuda.cpp with the current CUDA stream.
#pragma once

#include "snnkernels/leaky_params.h"

namespace snnk {

// Launch the forward / backward on `stream` (a cudaStream_t). Return nullptr on success, else the CUDA
// error string of the launch. Arguments must have been validated (leaky_api.cpp does so).
const char* leaky_fwd_cuda(const LeakyFwdParams& p, void* stream);
const char* leaky_bwd_cuda(const LeakyBwdParams& p, void* stream);

// Per element type backward launchers (one .cu file each, compiled in parallel).
const char* leaky_bwd_cuda_f32(const LeakyBwdParams& p, void* stream);
const char* leaky_bwd_cuda_f16(const LeakyBwdParams& p, void* stream);
const char* leaky_bwd_cuda_bf16(const LeakyBwdParams& p, void* stream);

}  // namespace snnk
