"""Triton sweeps of the global-context pooling of GCNet / STAA (docs/staa.md "For a fused kernel"): one pass each way.

Per frame n (= one (t, b)) of X [N, C, S] (S = H * W, each frame's C x S values contiguous):

    kappa[p] = sum_c wk[c] X[c, p] (+ bk)      att = softmax_p(kappa)        ctx[c] = sum_p att[p] X[c, p]

The key bias bk shifts every logit of a frame alike, so the softmax does not depend on it: the kernels
leave it out (its gradient is exactly 0).

Forward: one program per frame walks the pixels in tiles of [BLOCK_C >= C, BLOCK_P], with the online
softmax: a running max m and sum l of exp(kappa - m), and the context accumulator rescaled by
exp(m_old - m_new) whenever the max grows. It stores ctx and (m, l) per frame: att is recomputed from
them in the backward instead of being stored.

Backward, given dctx [N, C], in one pass as well, because sum_p att[p] datt[p] = dctx . ctx per frame
(a tiny dot the host computes from the forward's ctx):

    datt[p]   = sum_c dctx[c] X[c, p]
    dkappa[p] = att[p] (datt[p] - dctx . ctx)
    dX[c, p]  = att[p] dctx[c] + wk[c] dkappa[p]
    dwk[c]   += sum_p X[c, p] dkappa[p]      (per-frame partials [N, C], summed by the host in a fixed order)

fp32 arithmetic, op by op.
"""

import triton
import triton.language as tl


@triton.jit
def _frame_tile(x_ptr, n, p0, C, S, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """The [BLOCK_C, BLOCK_P] tile of frame n at pixel p0 (fp32), its offsets and mask."""
    ch = tl.arange(0, BLOCK_C)
    px = p0 + tl.arange(0, BLOCK_P)
    offs = n.to(tl.int64) * C * S + ch[:, None].to(tl.int64) * S + px[None, :]
    mask = (ch < C)[:, None] & (px < S)[None, :]
    return tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32), offs, mask, px < S


@triton.jit
def _logits(x, wk, pmask):
    """kappa of the tile's pixels, -inf on the padding columns."""
    kappa = tl.sum(x * wk[:, None], axis=0)
    return tl.where(pmask, kappa, float("-inf"))


@triton.jit
def _online_step(x, pmask, wk, m, denom, acc):
    """One tile of the online softmax: (max logit, sum of exp(logit - max), context accumulator) after it."""
    kappa = _logits(x, wk, pmask)
    m_new = tl.maximum(m, tl.max(kappa, axis=0))
    rescale = tl.exp(m - m_new)
    e = tl.exp(kappa - m_new)  # 0 on the padding
    denom = denom * rescale + tl.sum(e, axis=0)
    acc = acc * rescale + tl.sum(x * e[None, :], axis=1)
    return m_new, denom, acc


@triton.jit
def gc_context_fwd_kernel(x_ptr, wk_ptr, ctx_ptr, stats_ptr, C, S, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """ctx [N, C] fp32 and stats [N, 2] = (max logit, sum of exp(logit - max)); grid (N,)."""
    n = tl.program_id(0)
    ch = tl.arange(0, BLOCK_C)
    wk = tl.load(wk_ptr + ch, mask=ch < C, other=0.0)
    # 0-d fp32 tensors from the start: loop-carried values must keep one type
    m = tl.max(tl.full([BLOCK_P], float("-inf"), tl.float32), axis=0)
    denom = tl.sum(tl.zeros([BLOCK_P], tl.float32), axis=0)
    acc = tl.zeros([BLOCK_C], tl.float32)
    if BLOCK_C * BLOCK_P <= 2048:
        # Two tiles' loads, then the tiles in order (the second only where it holds pixels): the same arithmetic.
        # With 4-pixel tiles one tile's 16-byte loads are half sectors whose other half is the next tile's; small
        # tiles only, so that the pair stays in registers (bench/NOTES.md "Global context: two pixel tiles").
        for p0 in range(0, S, 2 * BLOCK_P):
            x, _, _, pmask = _frame_tile(x_ptr, n, p0, C, S, BLOCK_C, BLOCK_P)
            x1, _, _, pmask1 = _frame_tile(x_ptr, n, p0 + BLOCK_P, C, S, BLOCK_C, BLOCK_P)
            m, denom, acc = _online_step(x, pmask, wk, m, denom, acc)
            if p0 + BLOCK_P < S:
                m, denom, acc = _online_step(x1, pmask1, wk, m, denom, acc)
    else:
        for p0 in range(0, S, BLOCK_P):
            x, _, _, pmask = _frame_tile(x_ptr, n, p0, C, S, BLOCK_C, BLOCK_P)
            m, denom, acc = _online_step(x, pmask, wk, m, denom, acc)
    tl.store(ctx_ptr + n.to(tl.int64) * C + ch, acc / denom, mask=ch < C)
    tl.store(stats_ptr + 2 * n, m)
    tl.store(stats_ptr + 2 * n + 1, denom)


@triton.jit
def _bwd_tile(x, offs, mask, pmask, wk, dctx, m, denom, dot, dx_ptr, acc_wk):
    """One tile of the backward: stores its dX and returns the dwk accumulator after it."""
    att = tl.exp(_logits(x, wk, pmask) - m) / denom
    datt = tl.sum(x * dctx[:, None], axis=0)
    dkappa = att * (datt - dot)
    dx = att[None, :] * dctx[:, None] + wk[:, None] * dkappa[None, :]
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    return acc_wk + tl.sum(x * dkappa[None, :], axis=1)


@triton.jit
def gc_context_bwd_kernel(
    x_ptr, wk_ptr, stats_ptr, dctx_ptr, dot_ptr, dx_ptr, dwk_ptr, C, S, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr
):
    """dX (X's dtype) and per-frame dwk partials [N, C] fp32, given dctx [N, C] and dot[n] = dctx . ctx."""
    n = tl.program_id(0)
    ch = tl.arange(0, BLOCK_C)
    cmask = ch < C
    wk = tl.load(wk_ptr + ch, mask=cmask, other=0.0)
    dctx = tl.load(dctx_ptr + n.to(tl.int64) * C + ch, mask=cmask, other=0.0)
    m = tl.load(stats_ptr + 2 * n)
    denom = tl.load(stats_ptr + 2 * n + 1)
    dot = tl.load(dot_ptr + n)
    acc_wk = tl.zeros([BLOCK_C], tl.float32)
    if BLOCK_C * BLOCK_P <= 2048:
        # two tiles' loads before the first tile's dX store (``gc_context_fwd_kernel``)
        for p0 in range(0, S, 2 * BLOCK_P):
            x, offs, mask, pmask = _frame_tile(x_ptr, n, p0, C, S, BLOCK_C, BLOCK_P)
            x1, offs1, mask1, pmask1 = _frame_tile(x_ptr, n, p0 + BLOCK_P, C, S, BLOCK_C, BLOCK_P)
            acc_wk = _bwd_tile(x, offs, mask, pmask, wk, dctx, m, denom, dot, dx_ptr, acc_wk)
            if p0 + BLOCK_P < S:
                acc_wk = _bwd_tile(x1, offs1, mask1, pmask1, wk, dctx, m, denom, dot, dx_ptr, acc_wk)
    else:
        for p0 in range(0, S, BLOCK_P):
            x, offs, mask, pmask = _frame_tile(x_ptr, n, p0, C, S, BLOCK_C, BLOCK_P)
            acc_wk = _bwd_tile(x, offs, mask, pmask, wk, dctx, m, denom, dot, dx_ptr, acc_wk)
    tl.store(dwk_ptr + n.to(tl.int64) * C + ch, acc_wk, mask=cmask)
