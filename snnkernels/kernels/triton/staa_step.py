"""Triton kernels of one STAA-LIF step (docs/staa.md "For a fused kernel"): the gated aggregation, fire and reset.

One step on [B, C, H, W] seen as R = B * C rows of S = H * W contiguous values (h, y, spikes and their
gradients all dense in that order), with per-row gates ga, gb (fp32 [R]: the step attention's, or 1 for a
dropped step) and per-channel coefficients a, b (fp32 [C], or one value broadcast by the launcher):

    A = a h        B = b y        U = ga A + gb B        s = [U - th >= 0]        h' = U (1 - s) + v_reset s

in that op order, as ``reference.staa.staa_lif_reference`` computes it. The forward also sums h' over each
row, the next step's pooling input (no sweep of its own). The backward recomputes U from (h, y, ga, gb)
and, given dL/ds, dL/dh' and dL/d(row sum of h'), writes dL/dh and dL/dy and reduces per row in a fixed
order (programs own whole rows: deterministic, no atomics) dL/dga = sum_p dU A, dL/dgb = sum_p dU B,
dL/da-part = sum_p dA h and dL/db-part = sum_p dB y.
"""

import triton
import triton.language as tl

from .neuron_step import fire, grad_charge
from .row_tiles import tile
from .surrogate import surrogate_derivative


@triton.jit
def _rows(R, C, BLOCK_R: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    return rows, rmask, rows % C


@triton.jit
def _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, R, C, S, BLOCK_R: tl.constexpr):
    """This program's rows: mask, int64 row offsets [BLOCK_R], and a, b, ga, gb as [BLOCK_R, 1] columns."""
    rows, rmask, ch = _rows(R, C, BLOCK_R)
    a = tl.load(a_ptr + ch, mask=rmask, other=0.0)[:, None]
    b = tl.load(b_ptr + ch, mask=rmask, other=0.0)[:, None]
    ga = tl.load(ga_ptr + rows, mask=rmask, other=0.0)[:, None]
    gb = tl.load(gb_ptr + rows, mask=rmask, other=0.0)[:, None]
    return rows, rmask, rows.to(tl.int64) * S, a, b, ga, gb


@triton.jit
def _charge(h_ptr, y_ptr, offs, mask, a, b, ga, gb):
    h = tl.load(h_ptr + offs, mask=mask, other=0.0)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    big_a = a * h
    big_b = b * y
    return h, y, big_a, big_b, ga * big_a + gb * big_b


@triton.jit
def staa_step_fwd_kernel(
    h_ptr,
    y_ptr,
    a_ptr,
    b_ptr,
    ga_ptr,
    gb_ptr,
    s_ptr,
    h_out_ptr,
    h_sum_ptr,
    R,
    S,
    C,
    v_threshold,
    v_reset,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, rmask, base, a, b, ga, gb = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, R, C, S, BLOCK_R)
    acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        _, _, _, _, u = _charge(h_ptr, y_ptr, offs, mask, a, b, ga, gb)
        spike = tl.where(fire(u, v_threshold, False), 1.0, 0.0)
        tl.store(s_ptr + offs, spike.to(s_ptr.dtype.element_ty), mask=mask)
        h_next = u * (1.0 - spike) + v_reset * spike
        tl.store(h_out_ptr + offs, h_next, mask=mask)
        acc += tl.where(mask, h_next, 0.0)
    tl.store(h_sum_ptr + rows, tl.sum(acc, axis=1), mask=rmask)


@triton.jit
def staa_step_bwd_kernel(
    h_ptr,
    y_ptr,
    a_ptr,
    b_ptr,
    ga_ptr,
    gb_ptr,
    ds_ptr,
    dh_out_ptr,
    dh_sum_ptr,
    dh_ptr,
    dy_ptr,
    sums_ptr,
    R,
    S,
    C,
    v_threshold,
    v_reset,
    sg_param,
    HAS_DH: tl.constexpr,
    HAS_DSUM: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """sums_ptr: fp32 [4, R] = (dL/dga, dL/dgb, sum_p dA h, sum_p dB y). dL/dh' is dh_out (HAS_DH) plus the
    row sum's gradient, the same for every element of the row (HAS_DSUM)."""
    rows, rmask, base, a, b, ga, gb = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, R, C, S, BLOCK_R)
    if HAS_DSUM:
        d_sum = tl.load(dh_sum_ptr + rows, mask=rmask, other=0.0)[:, None]
    acc_ga = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    acc_gb = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    acc_a = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    acc_b = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        h, y, big_a, big_b, u = _charge(h_ptr, y_ptr, offs, mask, a, b, ga, gb)
        grad_s = tl.load(ds_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_DH or HAS_DSUM:
            if HAS_DH and HAS_DSUM:
                grad_h_next = tl.load(dh_out_ptr + offs, mask=mask, other=0.0) + d_sum
            elif HAS_DH:
                grad_h_next = tl.load(dh_out_ptr + offs, mask=mask, other=0.0)
            else:
                grad_h_next = tl.zeros([BLOCK_R, BLOCK_S], tl.float32) + d_sum
            # the leaky family's chain: hard reset to v_reset, firing on U >= threshold
            grad_u = grad_charge(
                grad_s, grad_h_next, u, v_threshold, v_reset, sg_param, True, False, DETACH_RESET, SG_ID
            )
        else:
            grad_u = grad_s * surrogate_derivative(u - v_threshold, SG_ID, sg_param)
        grad_u = tl.where(mask, grad_u, 0.0)
        grad_a = grad_u * ga
        grad_b = grad_u * gb
        tl.store(dh_ptr + offs, grad_a * a, mask=mask)
        tl.store(dy_ptr + offs, grad_b * b, mask=mask)
        acc_ga += grad_u * big_a
        acc_gb += grad_u * big_b
        acc_a += grad_a * h
        acc_b += grad_b * y
    tl.store(sums_ptr + rows, tl.sum(acc_ga, axis=1), mask=rmask)
    tl.store(sums_ptr + R + rows, tl.sum(acc_gb, axis=1), mask=rmask)
    tl.store(sums_ptr + 2 * R + rows, tl.sum(acc_a, axis=1), mask=rmask)
    tl.store(sums_ptr + 3 * R + rows, tl.sum(acc_b, axis=1), mask=rmask)
