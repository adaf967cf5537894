// TORCH_CHECK-based argument checks with specific messages. Torch-dependent: include only from the API
// .cpp files (never from .cu files or the torch-free cores).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

// `name` is the argument's name as the op's schema spells it.
#define CHECK_DEVICE(t, expected_device, name)                                                        \
  TORCH_CHECK((t).device() == (expected_device), "snnkernels: ", name, " must be on ", (expected_device), \
              " like x, got ", (t).device())

#define CHECK_SHAPE(t, expected_sizes, name)                                                        \
  TORCH_CHECK((t).sizes() == (expected_sizes), "snnkernels: ", name, " must have shape ", (expected_sizes), \
              ", got ", (t).sizes())

#define CHECK_CONTIGUOUS(t, name) \
  TORCH_CHECK((t).is_contiguous(), "snnkernels: ", name, " must be contiguous (strides ", (t).strides(), ")")

#define CHECK_DTYPE(t, expected_dtype, name)                                                          \
  TORCH_CHECK((t).scalar_type() == (expected_dtype), "snnkernels: ", name, " must be ", (expected_dtype), \
              ", got ", (t).scalar_type())

#define CHECK_FLOATING(t, name) \
  TORCH_CHECK((t).is_floating_point(), "snnkernels: ", name, " must be a floating-point tensor, got ", (t).scalar_type())
