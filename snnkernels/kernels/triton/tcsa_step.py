"""Triton kernels of one step of the MA-SNN paper's in-loop TCSA-LIF: the channel and spatial gates applied to
the membrane potential, fire and reset, in one sweep each way (docs/ma_snn.md "Paper variant: TCSA-LIF").

One step on V [B, C, H, W] (dense; S = H * W), with the channel gate sc [B, C] and the spatial map gs [B, S]
(fp32, from the attention's statistics sweeps):

    U = gs (sc V)        s = [U - u_th >= 0]        H' = v_reset s + beta U (1 - s)        (V' = H' + X_next)

in the reference's op order (``reference.ma_snn.tcsa_lif_paper_reference``). A program owns one sample b
and a block of pixels across ALL channels ([BLOCK_C >= C, BLOCK_S] tiles), so the backward reduces the
spatial map's gradient over c inside the tile and writes it directly:

    dU = dL/ds sg + dL/dH' (beta (1 - s) + (v_reset - beta U) sg)   (the last term unless detached)
    dV = (dU gs) sc        dgs[b, p] = sum_c dU (sc V)        dsc[b, c] = sum_p dU gs V  (per pixel block)

The per-pixel-block partials of dsc are summed by the host in a fixed order: deterministic, no atomics.
"""

import triton
import triton.language as tl

from .neuron_step import fire
from .surrogate import surrogate_derivative


@triton.jit
def _sample_tile(sc_ptr, gs_ptr, C, S, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """(b, channel mask, pixel mask, offsets into [B, C, S], sc column [BLOCK_C, 1], gs row [1, BLOCK_S])."""
    b = tl.program_id(0)
    ch = tl.arange(0, BLOCK_C)
    px = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    cmask, pmask = ch < C, px < S
    offs = (b.to(tl.int64) * C + ch[:, None]) * S + px[None, :]
    sc = tl.load(sc_ptr + b * C + ch, mask=cmask, other=0.0)[:, None]
    gs = tl.load(gs_ptr + b.to(tl.int64) * S + px, mask=pmask, other=0.0)[None, :]
    return b, cmask, pmask, offs, sc, gs


@triton.jit
def tcsa_step_fwd_kernel(
    v_ptr,
    sc_ptr,
    gs_ptr,
    x_next_ptr,
    s_ptr,
    h_ptr,
    C,
    S,
    u_th,
    v_reset,
    beta,
    HAS_NEXT: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """With HAS_NEXT the output is the next step's V = H' + X_next (its input added here, saving a pass),
    else H'."""
    _, cmask, pmask, offs, sc, gs = _sample_tile(sc_ptr, gs_ptr, C, S, BLOCK_C, BLOCK_S)
    mask = cmask[:, None] & pmask[None, :]
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    u = gs * (sc * v)
    spike = tl.where(fire(u, u_th, False), 1.0, 0.0)
    tl.store(s_ptr + offs, spike.to(s_ptr.dtype.element_ty), mask=mask)
    h = v_reset * spike + beta * u * (1.0 - spike)
    if HAS_NEXT:
        h = h + tl.load(x_next_ptr + offs, mask=mask, other=0.0)
    tl.store(h_ptr + offs, h, mask=mask)


@triton.jit
def tcsa_step_bwd_kernel(
    v_ptr,
    sc_ptr,
    gs_ptr,
    ds_ptr,
    dh_ptr,
    dv_ptr,
    dsc_ptr,
    dgs_ptr,
    B,
    C,
    S,
    u_th,
    v_reset,
    beta,
    sg_param,
    HAS_DH: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """dV [B, C, S]; dsc partials [n_pixel_blocks, B, C]; dgs [B, S]."""
    b, cmask, pmask, offs, sc, gs = _sample_tile(sc_ptr, gs_ptr, C, S, BLOCK_C, BLOCK_S)
    mask = cmask[:, None] & pmask[None, :]
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    scaled = sc * v
    u = gs * scaled
    sg = surrogate_derivative(u - u_th, SG_ID, sg_param)
    grad_u = tl.load(ds_ptr + offs, mask=mask, other=0.0).to(tl.float32) * sg
    if HAS_DH:
        spike = tl.where(fire(u, u_th, False), 1.0, 0.0)
        dh_du = beta * (1.0 - spike)
        if not DETACH_RESET:
            dh_du = dh_du + (v_reset - beta * u) * sg
        grad_u += tl.load(dh_ptr + offs, mask=mask, other=0.0) * dh_du
    grad_u = tl.where(mask, grad_u, 0.0)
    grad_scaled = grad_u * gs
    tl.store(dv_ptr + offs, grad_scaled * sc, mask=mask)
    ch = tl.arange(0, BLOCK_C)
    tl.store(dsc_ptr + (tl.program_id(1) * B + b) * C + ch, tl.sum(grad_scaled * v, axis=1), mask=cmask)
    px = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    tl.store(dgs_ptr + b.to(tl.int64) * S + px, tl.sum(grad_u * scaled, axis=0), mask=pmask)
