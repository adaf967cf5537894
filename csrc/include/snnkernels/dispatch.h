// Switch macros that turn run-time options into template parameters (flash-attention's static_switch.h
// idea). Torch-free: used by the CPU core and the CUDA launch code alike.
//
//   SNNK_BOOL_SWITCH(p.hard_reset, HARD, [&] { run<HARD>(p); });
//   SNNK_SURROGATE_SWITCH(p.surrogate_id, SG, [&] { run<SG>(p); });
//   SNNK_ELEMENT_SWITCH(p.dtype, scalar_t, [&] { run<scalar_t>(p); });
//
// The last argument is a callable (usually a lambda capturing by reference) that sees the constant as a
// constexpr name; the macro returns what the callable returns. Callers validate the run-time value first
// (the API layer rejects unknown surrogate ids and dtypes); an out-of-range value runs the last case.
#pragma once

#include "snnkernels/convert.h"
#include "snnkernels/leaky_params.h"
#include "snnkernels/surrogate.h"

#define SNNK_BOOL_SWITCH(COND, CONST_NAME, ...)   \
  [&] {                                           \
    if (COND) {                                   \
      constexpr static bool CONST_NAME = true;    \
      return __VA_ARGS__();                       \
    } else {                                      \
      constexpr static bool CONST_NAME = false;   \
      return __VA_ARGS__();                       \
    }                                             \
  }()

#define SNNK_SURROGATE_SWITCH(SG_ID, CONST_NAME, ...)            \
  [&] {                                                          \
    switch (SG_ID) {                                             \
      case ::snnk::kATan: {                                      \
        constexpr static int CONST_NAME = ::snnk::kATan;         \
        return __VA_ARGS__();                                    \
      }                                                          \
      case ::snnk::kSigmoid: {                                   \
        constexpr static int CONST_NAME = ::snnk::kSigmoid;      \
        return __VA_ARGS__();                                    \
      }                                                          \
      case ::snnk::kTriangle: {                                  \
        constexpr static int CONST_NAME = ::snnk::kTriangle;     \
        return __VA_ARGS__();                                    \
      }                                                          \
      case ::snnk::kRectangle: {                                 \
        constexpr static int CONST_NAME = ::snnk::kRectangle;    \
        return __VA_ARGS__();                                    \
      }                                                          \
      case ::snnk::kPiecewiseExp: {                              \
        constexpr static int CONST_NAME = ::snnk::kPiecewiseExp; \
        return __VA_ARGS__();                                    \
      }                                                          \
      case ::snnk::kSoftSign: {                                  \
        constexpr static int CONST_NAME = ::snnk::kSoftSign;     \
        return __VA_ARGS__();                                    \
      }                                                          \
      case ::snnk::kSuperSpike: {                                \
        constexpr static int CONST_NAME = ::snnk::kSuperSpike;   \
        return __VA_ARGS__();                                    \
      }                                                          \
      default: {                                                 \
        constexpr static int CONST_NAME = ::snnk::kErf;          \
        return __VA_ARGS__();                                    \
      }                                                          \
    }                                                            \
  }()

// scalar_t is float, snnk::half_t or snnk::bf16_t (the kernels' element types).
#define SNNK_ELEMENT_SWITCH(DTYPE, TYPE_NAME, ...)      \
  [&] {                                                 \
    switch (DTYPE) {                                    \
      case ::snnk::ElementType::kFloat16: {             \
        using TYPE_NAME = ::snnk::half_t;               \
        return __VA_ARGS__();                           \
      }                                                 \
      case ::snnk::ElementType::kBFloat16: {            \
        using TYPE_NAME = ::snnk::bf16_t;               \
        return __VA_ARGS__();                           \
      }                                                 \
      default: {                                        \
        using TYPE_NAME = float;                        \
        return __VA_ARGS__();                           \
      }                                                 \
    }                                                   \
  }()
