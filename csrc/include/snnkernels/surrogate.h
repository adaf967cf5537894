// Surrogate derivatives ds/dx at x = h - v_threshold, for host and device (g++, nvcc, NVRTC).
//
// Ids and formulas are those of snnkernels/surrogate.py; the operation order follows the Triton helper
// (snnkernels/kernels/triton/surrogate.py) op by op, every op rounded separately:
//   0 ATan(alpha):      z = (pi/2 * alpha) * x;   (alpha * 0.5) / (1 + z * z)
//   1 Sigmoid(alpha):   sig = 1 / (1 + exp(-(alpha * x)));   alpha * sig * (1 - sig)
//   2 Triangle(gamma):  max(gamma - |x|, 0) / (gamma * gamma)
//   3 Rectangle(width): |x| < width * 0.5 ? 1 / width : 0
//   4 PiecewiseExp(a):  (a * 0.5) * exp(-(a * |x|))
//   5 SoftSign(a):      z = 1 + a * |x|;   (a * 0.5) / (z * z)
//   6 SuperSpike(a):    z = 1 + |x|;   a / (z * z)
//   7 Erf(a):           z = a * x;   exp(-(z * z)) * (a * (1 / sqrt(pi)))
#pragma once

#include "snnkernels/arith.h"

// SNNK_HOST_DEVICE (from arith.h): __host__ __device__ under nvcc / NVRTC, empty for host compilers.

namespace snnk {

enum SurrogateId : int {
  kATan = 0,
  kSigmoid = 1,
  kTriangle = 2,
  kRectangle = 3,
  kPiecewiseExp = 4,
  kSoftSign = 5,
  kSuperSpike = 6,
  kErf = 7,
};
constexpr int kNumSurrogates = 8;

template <int SG_ID>
SNNK_INLINE float surrogate_derivative(float x, float param) {
  static_assert(SG_ID >= 0 && SG_ID < kNumSurrogates, "surrogate id must be 0..7 (snnkernels/surrogate.py)");
  if constexpr (SG_ID == kATan) {
    const float kHalfPi = 1.5707963267948966f;
    const float z = mul_rn(mul_rn(kHalfPi, param), x);
    return div_rn(mul_rn(param, 0.5f), add_rn(1.0f, mul_rn(z, z)));
  } else if constexpr (SG_ID == kSigmoid) {
    const float sig = div_rn(1.0f, add_rn(1.0f, exp_f32(-mul_rn(param, x))));
    return mul_rn(mul_rn(param, sig), sub_rn(1.0f, sig));
  } else if constexpr (SG_ID == kTriangle) {
    const float d = sub_rn(param, abs_f32(x));
    return div_rn(d > 0.0f ? d : 0.0f, mul_rn(param, param));
  } else if constexpr (SG_ID == kRectangle) {
    return abs_f32(x) < mul_rn(param, 0.5f) ? div_rn(1.0f, param) : 0.0f;
  } else if constexpr (SG_ID == kPiecewiseExp) {
    return mul_rn(mul_rn(param, 0.5f), exp_f32(-mul_rn(param, abs_f32(x))));
  } else if constexpr (SG_ID == kSoftSign) {
    const float z = add_rn(1.0f, mul_rn(param, abs_f32(x)));
    return div_rn(mul_rn(param, 0.5f), mul_rn(z, z));
  } else if constexpr (SG_ID == kSuperSpike) {
    const float z = add_rn(1.0f, abs_f32(x));
    return div_rn(param, mul_rn(z, z));
  } else {
    const float kInvSqrtPi = 0.5641895835477563f;
    const float z = mul_rn(param, x);
    return mul_rn(exp_f32(-mul_rn(z, z)), mul_rn(param, kInvSqrtPi));
  }
}

// The id chosen at run time (-1 as a template id in the kernels); ids outside 0..7 give 0.
SNNK_INLINE float surrogate_derivative_rt(int sg_id, float x, float param) {
  switch (sg_id) {
    case kATan:
      return surrogate_derivative<kATan>(x, param);
    case kSigmoid:
      return surrogate_derivative<kSigmoid>(x, param);
    case kTriangle:
      return surrogate_derivative<kTriangle>(x, param);
    case kRectangle:
      return surrogate_derivative<kRectangle>(x, param);
    case kPiecewiseExp:
      return surrogate_derivative<kPiecewiseExp>(x, param);
    case kSoftSign:
      return surrogate_derivative<kSoftSign>(x, param);
    case kSuperSpike:
      return surrogate_derivative<kSuperSpike>(x, param);
    case kErf:
      return surrogate_derivative<kErf>(x, param);
    default:
      return 0.0f;
  }
}

}  // namespace snnk
