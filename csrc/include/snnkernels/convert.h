// fp16 / bf16 storage types and their conversions to and from fp32, for host and device, without
// cuda_fp16.h / cuda_bf16.h (which a CPU torch build does not ship and NVRTC does not find by default).
//
// Device: PTX cvt instructions (cvt.f32.f16, cvt.rn.f16.f32, cvt.rn.bf16.f32 on sm_80+; bf16 -> fp32 is a
// 16-bit shift). Host: branch-free integer/float code, bit-exact round-to-nearest-even like torch's
// .to(dtype) and the GPU instructions (NaNs stay NaN; their payload may differ), written so that GCC
// vectorises loops that call it.
#pragma once

#include "snnkernels/arith.h"

namespace snnk {

// Element types: 16-bit payloads with the alignment of their size, so arrays of them are layout-compatible
// with torch's Half / BFloat16 tensors.
struct alignas(2) half_t {
  unsigned short bits;
};
struct alignas(2) bf16_t {
  unsigned short bits;
};

// ---- host software conversions ----

SNNK_INLINE float half_bits_to_float_sw(unsigned int h) {
  const unsigned int sign = (h & 0x8000u) << 16;
  const unsigned int exp = (h >> 10) & 0x1fu;
  const unsigned int mant = h & 0x3ffu;
  const unsigned int normal = ((exp + 112u) << 23) | (mant << 13);
  const unsigned int special = 0x7f800000u | (mant << 13);  // inf / NaN
  // subnormal half (exp == 0): mant * 2^-24, exact in fp32 and a normal fp32 number
  const unsigned int sub = float_bits(static_cast<float>(static_cast<int>(mant)) * 5.9604644775390625e-8f);
  const unsigned int mag = exp == 0u ? sub : (exp == 31u ? special : normal);
  return bits_float(sign | mag);
}

SNNK_INLINE unsigned short float_to_half_bits_sw(float f) {
  const unsigned int u = float_bits(f);
  const unsigned int sign = (u >> 16) & 0x8000u;
  const unsigned int a = u & 0x7fffffffu;
  // normal half range: rebias the exponent, round the 13 dropped bits to nearest even
  const unsigned int normal = (a - (112u << 23) + 0x0fffu + ((a >> 13) & 1u)) >> 13;
  // subnormal half range (|f| < 2^-14): adding 0.5f rounds |f| to a multiple of 2^-24 (the fp32 ulp at
  // 0.5) in the FPU's round-to-nearest-even; the low mantissa bits are then the half's mantissa.
  const unsigned int sub = float_bits(bits_float(a) + 0.5f) - 0x3f000000u;
  const unsigned int nan = 0x7e00u | ((a >> 13) & 0x3ffu);
  unsigned int r = a < 0x38800000u ? sub : normal;
  r = a >= 0x477ff000u ? 0x7c00u : r;  // rounds to infinity (>= 65520) or is infinite
  r = a > 0x7f800000u ? nan : r;
  return static_cast<unsigned short>(sign | r);
}

SNNK_INLINE float bf16_bits_to_float_sw(unsigned int b) { return bits_float(b << 16); }

SNNK_INLINE unsigned short float_to_bf16_bits_sw(float f) {
  const unsigned int u = float_bits(f);
  const unsigned int rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<unsigned short>((u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : rounded);
}

// ---- element <-> fp32 ----

template <typename T>
struct Convert;

template <>
struct Convert<float> {
  static SNNK_INLINE float to_float(float v) { return v; }
  static SNNK_INLINE float from_float(float v) { return v; }
};

template <>
struct Convert<half_t> {
  static SNNK_INLINE float to_float(half_t v) {
#if SNNK_DEVICE_CODE
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
#else
    return half_bits_to_float_sw(v.bits);
#endif
  }
  static SNNK_INLINE half_t from_float(float f) {
    half_t r;
#if SNNK_DEVICE_CODE
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
#else
    r.bits = float_to_half_bits_sw(f);
#endif
    return r;
  }
};

template <>
struct Convert<bf16_t> {
  static SNNK_INLINE float to_float(bf16_t v) {
#if SNNK_DEVICE_CODE
    return __uint_as_float(static_cast<unsigned int>(v.bits) << 16);
#else
    return bf16_bits_to_float_sw(v.bits);
#endif
  }
  static SNNK_INLINE bf16_t from_float(float f) {
    bf16_t r;
#if SNNK_DEVICE_CODE && (__CUDA_ARCH__ >= 800)
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
#else
    r.bits = float_to_bf16_bits_sw(f);
#endif
    return r;
  }
};

template <typename T>
SNNK_INLINE float to_float(T v) {
  return Convert<T>::to_float(v);
}

template <typename T>
SNNK_INLINE T from_float(float f) {
  return Convert<T>::from_float(f);
}

}  // namespace snnk
