// Host/device qualifiers and fp32 arithmetic with explicit rounding, shared by the CPU core and the CUDA
// kernels. No std headers and no torch: this file compiles under g++, nvcc and NVRTC.
//
// Exactness rule of the library: the charge h = a*v + b*x + c (and every other product/sum of the
// kernels) is rounded op by op, never contracted into a fused multiply-add, so the native kernels give
// the same fp32 bits as the eager reference and the Triton kernels (compiled with enable_fp_fusion=False).
// On the device the *_rn intrinsics guarantee this whatever -fmad says; on the host the translation unit
// must be compiled with -ffp-contract=off (CMakeLists.txt and the documented load() flags do so).
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SNNK_HOST_DEVICE __host__ __device__
#define SNNK_INLINE __host__ __device__ __forceinline__
#else
#define SNNK_HOST_DEVICE
#if defined(__GNUC__) || defined(__clang__)
#define SNNK_INLINE inline __attribute__((always_inline))
#else
#define SNNK_INLINE inline
#endif
#endif

// True while compiling device code (nvcc's device pass or NVRTC).
#if defined(__CUDA_ARCH__)
#define SNNK_DEVICE_CODE 1
#else
#define SNNK_DEVICE_CODE 0
#endif

namespace snnk {

SNNK_INLINE float mul_rn(float a, float b) {
#if SNNK_DEVICE_CODE
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

SNNK_INLINE float add_rn(float a, float b) {
#if SNNK_DEVICE_CODE
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

SNNK_INLINE float sub_rn(float a, float b) {
#if SNNK_DEVICE_CODE
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

// IEEE division (round to nearest even) on both sides.
SNNK_INLINE float div_rn(float a, float b) {
#if SNNK_DEVICE_CODE
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

SNNK_INLINE float abs_f32(float x) {
#if SNNK_DEVICE_CODE
  return fabsf(x);
#else
  return __builtin_fabsf(x);
#endif
}

SNNK_INLINE unsigned int float_bits(float x) {
#if SNNK_DEVICE_CODE
  return __float_as_uint(x);
#else
  unsigned int u;
  __builtin_memcpy(&u, &x, sizeof(u));
  return u;
#endif
}

SNNK_INLINE float bits_float(unsigned int u) {
#if SNNK_DEVICE_CODE
  return __uint_as_float(u);
#else
  float x;
  __builtin_memcpy(&x, &u, sizeof(x));
  return x;
#endif
}

// e^x in fp32. Device: CUDA's expf (max 2 ulp). Host: a branch-free Cephes-style expf (about 1 ulp) that
// GCC vectorises inside `#pragma omp simd` loops, unlike libm's expf; used by the Sigmoid, PiecewiseExp and
// Erf surrogates.
SNNK_INLINE float exp_f32(float x) {
#if SNNK_DEVICE_CODE
  return expf(x);
#else
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f;  // few mantissa bits: k * kLn2Hi is exact for |k| < 2^9
  const float kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;   // 1.5 * 2^23: adding it rounds to an integer (nearest even)
  float xc = x < -88.0f ? -88.0f : x;  // keeps the scale factors finite; results outside are patched below
  xc = xc > 88.72283935546875f ? 88.72283935546875f : xc;
  const float kf_biased = xc * kLog2e + kRound;  // two roundings: fine, k only has to be near x*log2(e)
  const float kf = kf_biased - kRound;
  const int k = static_cast<int>(float_bits(kf_biased) - float_bits(kRound));
  float r = xc - kf * kLn2Hi;
  r = r - kf * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * (r * r) + r + 1.0f;
  // 2^k in two factors so that k = 128 (x near ln(FLT_MAX)) does not overflow the exponent field
  const int k1 = k >> 1;
  const int k2 = k - k1;
  y = y * bits_float(static_cast<unsigned int>(k1 + 127) << 23);
  y = y * bits_float(static_cast<unsigned int>(k2 + 127) << 23);
  y = x > 88.72283935546875f ? bits_float(0x7f800000u) : y;  // overflow: +inf
  y = x < -87.33654f ? 0.0f : y;  // result below FLT_MIN: flushed to 0 (the surrogate adds it to 1)
  y = x != x ? x : y;  // NaN propagates
  return y;
#endif
}

}  // namespace snnk
