"""Triton kernels of the pooled attentions (TCJA, T-XA, DTA): per-row sums and per-row elementwise sweeps.

Layout: a tensor [T, B, C, H, W] is R = T * B * C rows of S = H * W contiguous values. Row r = (t * B + b)
* C + c starts at ``t * st + b * sb + c * sc``, so both the library layout and the transposed [B, T, ...]
storage of DTA-SNN are walked in place. Every full-size tensor a kernel touches has the same strides (the
launcher makes it so), except DTA's NA and its gradient, which keep T-NA's own; per-row values (the gates,
the row sums) are dense [R] fp32 vectors.

A program owns a tile of BLOCK_R rows x BLOCK_S columns and walks the row in BLOCK_S steps. Row sums
accumulate a [BLOCK_R, BLOCK_S] fp32 tile and reduce it once at the end: a fixed order, so results are
deterministic run to run (no atomics).

Arithmetic is fp32 (the loads are converted), op by op (launch with ``enable_fp_fusion=False``), in the
order autograd of the eager reference uses, so an fp32 forward equals the reference bit for bit given
the same gate.
"""

import triton
import triton.language as tl

from .dta_terms import na_value, sigmoid
from .row_tiles import tile, tile_rows

# which elementwise map a sweep applies, per row r with per-row values a_r, b_r
GATE = 0  # y = x * a_r                 (TCJA and its ablations)
CROSS = 1  # y = (x + a_r) * (x + b_r)  (T-XA)


@triton.jit
def row_sums_kernel(
    a_ptr,
    b_ptr,
    sum_ptr,
    dot_ptr,
    R,
    S,
    B,
    C,
    st,
    sb,
    sc,
    HAS_B: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """sum_ptr[r] = sum_s a[r, s]; with HAS_B also dot_ptr[r] = sum_s a[r, s] * b[r, s]."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    acc_dot = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        acc += a
        if HAS_B:
            b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            acc_dot += a * b
    tl.store(sum_ptr + rows, tl.sum(acc, axis=1), mask=rmask)
    if HAS_B:
        tl.store(dot_ptr + rows, tl.sum(acc_dot, axis=1), mask=rmask)


@triton.jit
def _row_values(a_ptr, b_ptr, rows, rmask, MODE: tl.constexpr):
    a = tl.load(a_ptr + rows, mask=rmask, other=0.0)[:, None]
    if MODE == 1:
        b = tl.load(b_ptr + rows, mask=rmask, other=0.0)[:, None]
    else:
        b = a
    return a, b


@triton.jit
def row_map_fwd_kernel(
    x_ptr, a_ptr, b_ptr, y_ptr, R, S, B, C, st, sb, sc, MODE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr
):
    """y = x * a_r (GATE) or (x + a_r) * (x + b_r) (CROSS)."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    a, b = _row_values(a_ptr, b_ptr, rows, rmask, MODE)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if MODE == 0:
            y = x * a
        else:
            y = (x + a) * (x + b)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def row_map_bwd_kernel(
    gy_ptr,
    x_ptr,
    a_ptr,
    b_ptr,
    dz_ptr,
    dx_ptr,
    R,
    S,
    B,
    C,
    st,
    sb,
    sc,
    MODE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """dx = d(map)/dx * gy + dz_r: the map's own derivative plus the pooled path (dz_r = dL/dZ_r / S)."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    a, b = _row_values(a_ptr, b_ptr, rows, rmask, MODE)
    dz = tl.load(dz_ptr + rows, mask=rmask, other=0.0)[:, None]
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        gy = tl.load(gy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if MODE == 0:
            dx = gy * a
        else:
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            dx = gy * (x + b) + gy * (x + a)
        dx = dx + dz
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _row_bias(bias_ptr, rows, rmask, NA_RESIDUAL: tl.constexpr):
    if NA_RESIDUAL:
        return tl.load(bias_ptr + rows, mask=rmask, other=0.0)[:, None]
    else:
        return 0.0


@triton.jit
def dta_fwd_kernel(
    x_ptr,
    na_ptr,
    s_ptr,
    a_ptr,
    b_ptr,
    bias_ptr,
    y_ptr,
    R,
    S,
    B,
    C,
    st,
    sb,
    sc,
    nst,
    nsb,
    nsc,
    NA_RESIDUAL: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """DTA's output y = sig(na * xa) * s with T-XA's xa = (x + a_r) * (x + b_r) formed on the fly; with
    NA_RESIDUAL the given na is T-NA's decoding conv without bias, and na + bias_r + x is formed here too.
    na keeps its own strides (nst, nsb, nsc): T-NA's output is [B, T] storage whatever x's is."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    na_base = tile_rows(R, B, C, nst, nsb, nsc, BLOCK_R)[2]
    a, b = _row_values(a_ptr, b_ptr, rows, rmask, 1)
    bias = _row_bias(bias_ptr, rows, rmask, NA_RESIDUAL)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        na_offs = tile(na_base, rmask, s0, S, BLOCK_S)[0]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        na = na_value(na_ptr, bias, x, na_offs, mask, NA_RESIDUAL)
        s = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        y = sigmoid(na * ((x + a) * (x + b))) * s
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def dta_bwd_kernel(
    gy_ptr,
    x_ptr,
    na_ptr,
    s_ptr,
    a_ptr,
    b_ptr,
    bias_ptr,
    dx_ptr,
    dna_ptr,
    ds_ptr,
    sum_ptr,
    dot_ptr,
    na_sum_ptr,
    R,
    S,
    B,
    C,
    st,
    sb,
    sc,
    nst,
    nsb,
    nsc,
    NEED_DS: tl.constexpr,
    NA_RESIDUAL: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """One sweep of DTA's backward: dna, ds, T-XA's elementwise dx (without the pooled path, which needs
    these row sums first), and the row sums sum_s dxa and sum_s dxa * x that give the gates' gradients.
    With NA_RESIDUAL also the residual's dna in dx and sum_s dna (the bias gradient, per row). na and dna
    with na's strides."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    na_base = tile_rows(R, B, C, nst, nsb, nsc, BLOCK_R)[2]
    a, b = _row_values(a_ptr, b_ptr, rows, rmask, 1)
    bias = _row_bias(bias_ptr, rows, rmask, NA_RESIDUAL)
    acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    acc_dot = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    acc_na = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        na_offs = tile(na_base, rmask, s0, S, BLOCK_S)[0]
        gy = tl.load(gy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        na = na_value(na_ptr, bias, x, na_offs, mask, NA_RESIDUAL)
        s = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        xa = (x + a) * (x + b)
        sig = sigmoid(na * xa)
        dp = gy * s * (sig * (1.0 - sig))
        dxa = dp * na
        dna = dp * xa
        tl.store(dna_ptr + na_offs, dna.to(dna_ptr.dtype.element_ty), mask=mask)
        if NEED_DS:
            tl.store(ds_ptr + offs, (gy * sig).to(ds_ptr.dtype.element_ty), mask=mask)
        dx = dxa * (x + b) + dxa * (x + a)
        if NA_RESIDUAL:
            dx = dx + dna
            acc_na += dna
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        acc += dxa
        acc_dot += dxa * x
    tl.store(sum_ptr + rows, tl.sum(acc, axis=1), mask=rmask)
    tl.store(dot_ptr + rows, tl.sum(acc_dot, axis=1), mask=rmask)
    if NA_RESIDUAL:
        tl.store(na_sum_ptr + rows, tl.sum(acc_na, axis=1), mask=rmask)
