// CPU kernels of the spike packing (docs/spike_pack.md "Layout"), registered for snnkernels::spike_pack_native /
// snnkernels::spike_unpack_native (schemas in csrc/registration.cpp; fakes in snnkernels/ops/spike_pack.py).
//
// Element i of x's contiguous (logical) order is bit i % 8 of byte i / 8, least significant bit first; the last
// byte's unused high bits are 0. Both directions walk whole bytes in parallel (at::parallel_for), so every byte
// has one writer. With `check`, packing also finds the first element that is neither 0 nor 1 (NaN included):
// each piece keeps its own first offender and the smallest wins, so the answer does not depend on the split.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "snnkernels/checks.h"

namespace snnk {
namespace {

// bytes a parallel piece handles at least: 32 KiB of fp32 input a piece
constexpr int64_t kGrainBytes = 1024;

int64_t packed_numel(int64_t n) { return (n + 7) / 8; }

template <typename scalar_t>
int64_t pack_bytes(const scalar_t* x, uint8_t* packed, int64_t n, bool check) {
  std::atomic<int64_t> first_bad{n};
  at::parallel_for(0, packed_numel(n), kGrainBytes, [&](int64_t begin, int64_t end) {
    int64_t bad = n;
    for (int64_t byte = begin; byte < end; ++byte) {
      const int64_t i0 = byte * 8;
      const int64_t count = std::min<int64_t>(8, n - i0);
      uint32_t word = 0;
      for (int64_t j = 0; j < count; ++j) {
        // compared in x's own type: exact for every dtype; NaN fails both comparisons
        const scalar_t v = x[i0 + j];
        const bool one = v != scalar_t(0);
        word |= static_cast<uint32_t>(one) << j;
        if (check && bad == n && one && v != scalar_t(1)) bad = i0 + j;
      }
      packed[byte] = static_cast<uint8_t>(word);
    }
    int64_t seen = first_bad.load();
    while (bad < seen && !first_bad.compare_exchange_weak(seen, bad)) {
    }
  });
  return first_bad.load();
}

template <typename scalar_t>
void unpack_bytes(const uint8_t* packed, scalar_t* out, int64_t n) {
  at::parallel_for(0, packed_numel(n), kGrainBytes, [&](int64_t begin, int64_t end) {
    for (int64_t byte = begin; byte < end; ++byte) {
      const int64_t i0 = byte * 8;
      const int64_t count = std::min<int64_t>(8, n - i0);
      const uint32_t word = packed[byte];
      for (int64_t j = 0; j < count; ++j) out[i0 + j] = static_cast<scalar_t>(static_cast<float>((word >> j) & 1u));
    }
  });
}

at::Tensor spike_pack_native_cpu(const at::Tensor& x, bool check) {
  TORCH_CHECK(x.is_floating_point() || x.scalar_type() == at::kByte,
              "spike_pack_native: x must be a float (or uint8) tensor of spikes, got ", x.scalar_type());
  const at::Tensor xc = x.contiguous();
  const int64_t n = xc.numel();
  at::Tensor packed = at::empty({packed_numel(n)}, xc.options().dtype(at::kByte));
  if (n == 0) return packed;
  int64_t first_bad = n;
  AT_DISPATCH_FLOATING_TYPES_AND3(at::kHalf, at::kBFloat16, at::kByte, xc.scalar_type(), "spike_pack_native", [&] {
    first_bad = pack_bytes<scalar_t>(xc.const_data_ptr<scalar_t>(), packed.mutable_data_ptr<uint8_t>(), n, check);
  });
  // a ValueError in Python; snnkernels/ops/spike_pack.py names the element in x's coordinates
  TORCH_CHECK_VALUE(first_bad == n, "spike_pack: x must hold only 0s and 1s; element ", first_bad,
                    " of its flattened order is ", xc.reshape(-1)[first_bad].item<double>());
  return packed;
}

at::Tensor spike_unpack_native_cpu(const at::Tensor& packed, c10::SymIntArrayRef shape, at::ScalarType dtype) {
  CHECK_DTYPE(packed, at::kByte, "packed");
  std::vector<int64_t> sizes;
  int64_t n = 1;
  for (const auto& s : shape) {
    sizes.push_back(s.expect_int());
    n *= sizes.back();
  }
  TORCH_CHECK_VALUE(packed.numel() >= packed_numel(n), "spike_unpack: ", c10::IntArrayRef(sizes), " needs ",
                    packed_numel(n), " packed bytes, got ", packed.numel());
  at::Tensor out = at::empty(sizes, packed.options().dtype(dtype));
  if (n == 0) return out;
  const at::Tensor pc = packed.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND3(at::kHalf, at::kBFloat16, at::kByte, dtype, "spike_unpack_native", [&] {
    unpack_bytes<scalar_t>(pc.const_data_ptr<uint8_t>(), out.mutable_data_ptr<scalar_t>(), n);
  });
  return out;
}

}  // namespace
}  // namespace snnk

TORCH_LIBRARY_IMPL(snnkernels, CPU, m) {
  m.impl("spike_pack_native", TORCH_FN(snnk::spike_pack_native_cpu));
  m.impl("spike_unpack_native", TORCH_FN(snnk::spike_unpack_native_cpu));
}
