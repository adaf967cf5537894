"""Surrogate derivatives in Triton, switched on the ids of ``snnkernels.surrogate``."""
import triton
import triton.language as tl

HALF_PI = tl.constexpr(1.5707963267948966)


@triton.jit
def surrogate_derivative(x, SG_ID: tl.constexpr, param):
    """ds/dx at ``x = u - V_th`` (fp32). Ids: 0 ATan, 1 Sigmoid, 2 Triangle, 3 Rectangle."""
    if SG_ID == 0:
        z = (HALF_PI * param) * x
        g = (param * 0.5) / (1.0 + z * z)
    elif SG_ID == 1:
        sig = tl.sigmoid(param * x)
        g = param * sig * (1.0 - sig)
    elif SG_ID == 2:
        g = tl.maximum(param - tl.abs(x), 0.0) / (param * param)
    else:
        g = tl.where(tl.abs(x) < param * 0.5, 1.0 / param, 0.0)
    return g
