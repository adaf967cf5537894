"""Triton sweeps of MA-SNN's released multi-dimensional attention (docs/ma_snn.md "Sweeps and backward").

Layout as ``pooled_attention``: X [T, B, C, H, W] is R = T * B * C rows of S = H * W contiguous values, row
r = (t * B + b) * C + c at ``t * st + b * sb + c * sc``; per-row vectors are dense fp32 [T, B, C] and
per-pixel maps dense fp32 [B, S]. Two kinds of program:

- row programs (``_tile_rows``): a tile of rows walks along H * W (row sum / max / argmax, the final apply
  and the backward's elementwise pass);
- pixel programs: a block of pixels of one sample b walks a SLICE of the T * C rows of that sample (the
  spatial attention's pooling over (t, c) and the backward's per-pixel sums). Slices keep enough programs
  in flight when B * H * W / BLOCK_P is small; their partial results are combined on the host in a fixed
  order (deterministic).

Maxima keep the first index on ties (strict >), as torch's max pooling does. Arithmetic is fp32.
"""

import triton
import triton.language as tl

from .row_tiles import tile, tile_rows


@triton.jit
def row_sum_max_kernel(
    x_ptr, sum_ptr, max_ptr, arg_ptr, R, S, B, C, st, sb, sc, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr
):
    """Per row: sum, max and the first position of the max over H * W (pass 1)."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    best = tl.full([BLOCK_R], float("-inf"), tl.float32)
    best_at = tl.zeros([BLOCK_R], tl.int32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        x = tl.load(x_ptr + offs, mask=mask, other=float("-inf")).to(tl.float32)
        acc += tl.where(mask, x, 0.0)
        tile_best = tl.max(x, axis=1)
        tile_at = tl.argmax(x, axis=1, tie_break_left=True).to(tl.int32) + s0
        better = tile_best > best
        best_at = tl.where(better, tile_at, best_at)
        best = tl.where(better, tile_best, best)
    tl.store(sum_ptr + rows, tl.sum(acc, axis=1), mask=rmask)
    tl.store(max_ptr + rows, best, mask=rmask)
    tl.store(arg_ptr + rows, best_at, mask=rmask)


@triton.jit
def _pixel_block(S, BLOCK_P: tl.constexpr):
    """(b, slice, pixel offsets, pixel mask) of this pixel program; grid = (B * cdiv(S, BLOCK_P), SPLIT)."""
    n_pblk = tl.cdiv(S, BLOCK_P)
    pid = tl.program_id(0)
    b = pid // n_pblk
    p = (pid % n_pblk) * BLOCK_P + tl.arange(0, BLOCK_P)
    return b, tl.program_id(1), p, p < S


@triton.jit
def _row_base(j, b, B, C, st, sb, sc):
    """Offset of row (t, b, c) for the j-th (t, c) pair of sample b, j = t * C + c."""
    return (j // C).to(tl.int64) * st + b.to(tl.int64) * sb + (j % C).to(tl.int64) * sc


# Rows a pixel program loads before using them: one row's load per loop trip would leave a one-warp program
# (8 x 8 planes) with a single 8-byte load in flight (bench/NOTES.md "MA-SNN pixel sweeps").
ROWS = tl.constexpr(8)


@triton.jit
def _pixel_row(ptr, scale_ptr, j, j_end, b, B, C, st, sb, sc, p, pmask):
    """(j < j_end, scale[t, b, c], the row's pixels in fp32) of row j = t * C + c of sample b (zeros past j_end)."""
    valid = j < j_end
    g = tl.load(scale_ptr + (j // C) * B * C + b * C + j % C, mask=valid, other=0.0)
    x = tl.load(ptr + _row_base(j, b, B, C, st, sb, sc) + p, mask=pmask & valid, other=0.0).to(tl.float32)
    return valid, g, x


@triton.jit(do_not_specialize=["T"])
def pixel_stats_kernel(
    x_ptr, scale_ptr, sum_ptr, max_ptr, arg_ptr, T, B, C, S, st, sb, sc, rows_per_split, BLOCK_P: tl.constexpr
):
    """Per pixel of sample b over this slice of (t, c): sum and max (first (t, c) index) of scale * X,
    written to [SPLIT, B, S] partials (pass 2: the spatial attention's pooling)."""
    b, split, p, pmask = _pixel_block(S, BLOCK_P)
    acc = tl.zeros([BLOCK_P], tl.float32)
    best = tl.full([BLOCK_P], float("-inf"), tl.float32)
    best_at = tl.zeros([BLOCK_P], tl.int32)
    j0 = split * rows_per_split
    j_end = tl.minimum(j0 + rows_per_split, T * C)
    for j in range(j0, j_end, ROWS):
        # ROWS rows' loads in flight together, then used in row order (rows past the slice change nothing)
        xs = ()
        for u in tl.static_range(ROWS):
            xs = xs + (_pixel_row(x_ptr, scale_ptr, j + u, j_end, b, B, C, st, sb, sc, p, pmask),)
        for u in tl.static_range(ROWS):
            valid, g, x = xs[u]
            v = x * g
            acc = tl.where(valid, acc + v, acc)
            better = valid & (v > best)
            best_at = tl.where(better, j + u, best_at)
            best = tl.where(better, v, best)
    out = (split * B + b) * S + p
    tl.store(sum_ptr + out, acc, mask=pmask)
    tl.store(max_ptr + out, best, mask=pmask)
    tl.store(arg_ptr + out, best_at, mask=pmask)


@triton.jit
def apply_kernel(
    x_ptr,
    scale_ptr,
    map_ptr,
    y_ptr,
    R,
    S,
    B,
    C,
    st,
    sb,
    sc,
    HAS_MAP: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Y = relu(X) * scale[t, b, c] (* map[b, p]): every gate is positive, so the ReLU commutes (pass 3)."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    g = tl.load(scale_ptr + rows, mask=rmask, other=0.0)[:, None]
    b = ((rows // C) % B)[:, None]
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        cols = s0 + tl.arange(0, BLOCK_S)[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        y = tl.maximum(x, 0.0) * g
        if HAS_MAP:
            y = y * tl.load(map_ptr + b * S + cols, mask=mask, other=0.0)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["T"])
def bwd_pixel_sums_kernel(
    gy_ptr,
    x_ptr,
    scale_ptr,
    map_ptr,
    dmap_ptr,
    dscale_ptr,
    T,
    B,
    C,
    S,
    st,
    sb,
    sc,
    rows_per_split,
    n_pblk,
    HAS_MAP: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Backward sweep 1, with GR = dY * relu(X): per pixel dmap = sum_(t,c) GR * scale ([SPLIT, B, S]
    partials) and per row and pixel block dscale = sum_p GR * map ([n_pblk, T, B, C] partials)."""
    b, split, p, pmask = _pixel_block(S, BLOCK_P)
    pblk = tl.program_id(0) % n_pblk
    acc = tl.zeros([BLOCK_P], tl.float32)
    if HAS_MAP:
        m = tl.load(map_ptr + b * S + p, mask=pmask, other=0.0)
    else:
        m = tl.full([BLOCK_P], 1.0, tl.float32)
    j0 = split * rows_per_split
    j_end = tl.minimum(j0 + rows_per_split, T * C)
    for j in range(j0, j_end, ROWS):
        # ROWS rows' loads before the first row's store (``pixel_stats_kernel``), used in row order
        rows = ()
        for u in tl.static_range(ROWS):
            valid, g, x = _pixel_row(x_ptr, scale_ptr, j + u, j_end, b, B, C, st, sb, sc, p, pmask)
            _v, _g, gy = _pixel_row(gy_ptr, scale_ptr, j + u, j_end, b, B, C, st, sb, sc, p, pmask)
            rows = rows + ((valid, g, x, gy),)
        for u in tl.static_range(ROWS):
            valid, g, x, gy = rows[u]
            gr = gy * tl.maximum(x, 0.0)
            acc = tl.where(valid, acc + gr * g, acc)
            row = ((j + u) // C) * B * C + b * C + (j + u) % C
            tl.store(dscale_ptr + pblk * T * B * C + row, tl.sum(gr * m, axis=0), mask=valid)
    if HAS_MAP:
        tl.store(dmap_ptr + (split * B + b) * S + p, acc, mask=pmask)


@triton.jit
def row_dot_map_kernel(x_ptr, map_ptr, out_ptr, R, S, B, C, st, sb, sc, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """Backward sweep 2: out[t, b, c] = sum_p X[t, b, c, p] * map[b, p]."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    b = ((rows // C) % B)[:, None]
    acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        cols = s0 + tl.arange(0, BLOCK_S)[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        acc += x * tl.load(map_ptr + b * S + cols, mask=mask, other=0.0)
    tl.store(out_ptr + rows, tl.sum(acc, axis=1), mask=rmask)


@triton.jit
def bwd_input_kernel(
    gy_ptr,
    x_ptr,
    scale_ptr,
    map_ptr,
    avg_map_ptr,
    max_map_ptr,
    max_arg_ptr,
    row_add_ptr,
    row_max_grad_ptr,
    row_arg_ptr,
    dx_ptr,
    R,
    S,
    B,
    C,
    st,
    sb,
    sc,
    HAS_MAP: tl.constexpr,
    HAS_DIRECT: tl.constexpr,
    ADD_PART: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """Backward sweep 3, dX of every path (the first term only with HAS_DIRECT; with ADD_PART instead, gy_ptr
    holds that term already computed, by the gated neuron's backward, and it is added as it is):
        dY * map * scale * [X > 0]                                  the apply pass
      + (avg_map[b, p] + max_map[b, p] * [(t, c) is p's argmax]) * scale   the spatial pooling (HAS_MAP)
      + row_add[t, b, c] + row_max_grad[t, b, c] * [p is the row's argmax]  the row pooling of pass 1
    (avg_map and row_add already carry their 1 / count)."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    g = tl.load(scale_ptr + rows, mask=rmask, other=0.0)[:, None]
    b = ((rows // C) % B)[:, None]
    tc = ((rows // (B * C)) * C + rows % C)[:, None]  # j = t * C + c of each row
    add = tl.load(row_add_ptr + rows, mask=rmask, other=0.0)[:, None]
    row_grad = tl.load(row_max_grad_ptr + rows, mask=rmask, other=0.0)[:, None]
    row_at = tl.load(row_arg_ptr + rows, mask=rmask, other=-1)[:, None]
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        cols = s0 + tl.arange(0, BLOCK_S)[None, :]
        if HAS_DIRECT:
            gy = tl.load(gy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            if HAS_MAP:
                gy = gy * tl.load(map_ptr + b * S + cols, mask=mask, other=0.0)
            dx = tl.where(x > 0.0, gy * g, 0.0)
        elif ADD_PART:
            dx = tl.load(gy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        else:
            dx = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
        if HAS_MAP:
            spatial = tl.load(avg_map_ptr + b * S + cols, mask=mask, other=0.0)
            at = tl.load(max_arg_ptr + b * S + cols, mask=mask, other=-1)
            spatial += tl.where(at == tc, tl.load(max_map_ptr + b * S + cols, mask=mask, other=0.0), 0.0)
            dx = dx + spatial * g
        dx = dx + add + tl.where(cols == row_at, row_grad, 0.0)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
