"""Triton sweeps of DTA's T-NA around its dense 1x1 convolutions (which stay on cuBLAS / cuDNN).

Tensors are T-NA's [B, D, H, W] seen as [1, B, D, H, W] rows (layout of ``pooled_attention``), per-row vectors
dense fp32 [B, D]. Arithmetic fp32, exact (erf) GELU as the reference.
"""

import triton
import triton.language as tl

from .row_tiles import tile, tile_rows

INV_SQRT2 = tl.constexpr(0.7071067811865476)
INV_SQRT_2PI = tl.constexpr(0.3989422804014327)


@triton.jit
def _gelu(x):
    return 0.5 * x * (1.0 + tl.math.erf(x * INV_SQRT2))


@triton.jit
def _gelu_grad(x):
    return 0.5 * (1.0 + tl.math.erf(x * INV_SQRT2)) + x * (tl.exp(-0.5 * x * x) * INV_SQRT_2PI)


@triton.jit
def gelu_rows_kernel(pre_ptr, e_ptr, sum_ptr, R, S, B, C, st, sb, sc, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """E = gelu(pre) and sum_hw E per row (the GTCA pooling) in one sweep."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        e = _gelu(tl.load(pre_ptr + offs, mask=mask, other=0.0).to(tl.float32))
        tl.store(e_ptr + offs, e.to(e_ptr.dtype.element_ty), mask=mask)
        acc += tl.where(mask, e, 0.0)
    tl.store(sum_ptr + rows, tl.sum(acc, axis=1), mask=rmask)


@triton.jit
def gelu_bwd_kernel(
    de_ptr, pre_ptr, dsum_ptr, dpre_ptr, R, S, B, C, st, sb, sc, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr
):
    """dpre = (dE + dsum_r) * gelu'(pre): E's gradient from every use, the pooled one as a per-row term."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    dsum = tl.load(dsum_ptr + rows, mask=rmask, other=0.0)[:, None]
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        de = tl.load(de_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        pre = tl.load(pre_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(dpre_ptr + offs, ((de + dsum) * _gelu_grad(pre)).to(dpre_ptr.dtype.element_ty), mask=mask)


@triton.jit
def gated_product_fwd_kernel(
    l_ptr, e_ptr, g_ptr, a_ptr, R, S, B, C, st, sb, sc, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr
):
    """A = g_r * L * E (GTCA's gate times LTCA's map times the encoding), in the reference's order."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    g = tl.load(g_ptr + rows, mask=rmask, other=0.0)[:, None]
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        lmap = tl.load(l_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        e = tl.load(e_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(a_ptr + offs, ((g * lmap) * e).to(a_ptr.dtype.element_ty), mask=mask)


@triton.jit
def gated_product_bwd_kernel(
    da_ptr,
    l_ptr,
    e_ptr,
    g_ptr,
    dl_ptr,
    de_ptr,
    dot_ptr,
    R,
    S,
    B,
    C,
    st,
    sb,
    sc,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """dL = dA g E, dE = dA g L and dg_r = sum_hw dA L E in one sweep."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    g = tl.load(g_ptr + rows, mask=rmask, other=0.0)[:, None]
    acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        da = tl.load(da_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        lmap = tl.load(l_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        e = tl.load(e_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        dge = da * e
        tl.store(dl_ptr + offs, (dge * g).to(dl_ptr.dtype.element_ty), mask=mask)
        tl.store(de_ptr + offs, ((da * g) * lmap).to(de_ptr.dtype.element_ty), mask=mask)
        acc += dge * lmap
    tl.store(dot_ptr + rows, tl.sum(acc, axis=1), mask=rmask)
