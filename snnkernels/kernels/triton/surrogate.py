"""Surrogate derivatives in Triton, switched on the ids of ``snnkernels.surrogate``."""

import triton
import triton.language as tl

HALF_PI = tl.constexpr(1.5707963267948966)
INV_SQRT_PI = tl.constexpr(0.5641895835477563)


@triton.jit
def surrogate_derivative(x, SG_ID: tl.constexpr, param):
    """ds/dx at ``x = u - V_th`` (fp32). Ids: 0 ATan, 1 Sigmoid, 2 Triangle, 3 Rectangle, 4 PiecewiseExp,
    5 SoftSign, 6 SuperSpike, 7 Erf (formulas in ``snnkernels.surrogate``; the C++ kernels compute them in
    the same op order, csrc/include/snnkernels/surrogate.h)."""
    if SG_ID == 0:
        z = (HALF_PI * param) * x
        g = (param * 0.5) / (1.0 + z * z)
    elif SG_ID == 1:
        sig = tl.sigmoid(param * x)
        g = param * sig * (1.0 - sig)
    elif SG_ID == 2:
        g = tl.maximum(param - tl.abs(x), 0.0) / (param * param)
    elif SG_ID == 3:
        g = tl.where(tl.abs(x) < param * 0.5, 1.0 / param, 0.0)
    elif SG_ID == 4:
        g = (param * 0.5) * tl.exp(-(param * tl.abs(x)))
    elif SG_ID == 5:
        z = 1.0 + param * tl.abs(x)
        g = (param * 0.5) / (z * z)
    elif SG_ID == 6:
        z = 1.0 + tl.abs(x)
        g = param / (z * z)
    else:
        z = param * x
        g = tl.exp(-(z * z)) * (param * INV_SQRT_PI)
    return g
