"""Tiles of the kernels that walk [T, B, C, H, W] tensors as rows of contiguous H * W planes.

Row r = (t * B + b) * C + c starts at ``t * st + b * sb + c * sc``, so the library's [T, B] layout and the
transposed [B, T] storage are both walked in place. A sweep's program owns BLOCK_R rows and walks them in
BLOCK_S steps (``tile_rows``, ``tile``); a neuron's program owns BLOCK_R rows x BLOCK_S columns of one step's
B * C rows and walks all T steps (``step_tile``, ``tile_setup``, ``row_values_at``, ``load_step``, ``x_of_step``,
``store_step``, ``store_row_counts``); ``as_stored`` rounds an fp32 value as a tensor of a given dtype holds it.
"""

import triton
import triton.language as tl


@triton.jit
def tile_rows(R, B, C, st, sb, sc, BLOCK_R: tl.constexpr):
    """Rows of this program, their mask and the int64 offset of each row's first element."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    c = rows % C
    tb = rows // C
    base = (tb // B).to(tl.int64) * st + (tb % B).to(tl.int64) * sb + c.to(tl.int64) * sc
    return rows, rmask, base


@triton.jit
def tile(base, rmask, s0, S, BLOCK_S: tl.constexpr):
    cols = s0 + tl.arange(0, BLOCK_S)
    offs = base[:, None] + cols[None, :]
    mask = rmask[:, None] & (cols < S)[None, :]
    return offs, mask


@triton.jit
def step_tile(R1, S, B, C, st, sb, sc, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """This program's rows, columns, offsets in X (step 0), mask, and offsets in the dense state."""
    rows, rmask, base = tile_rows(R1, B, C, st, sb, sc, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    offs = base[:, None] + cols[None, :]
    mask = rmask[:, None] & (cols < S)[None, :]
    dense = rows.to(tl.int64)[:, None] * S + cols[None, :]
    return rows, rmask, cols, offs, mask, dense


@triton.jit
def row_values_at(scale_ptr, t, rows, rmask, R1):
    """scale[t, b, c] of the tile's rows as a [BLOCK_R, 1] column."""
    return tl.load(scale_ptr + t * R1 + rows, mask=rmask, other=0.0)[:, None]


@triton.jit
def store_row_counts(counts_ptr, count_row, t, R1, spike, mask, row_mask):
    """The tile's spikes at step t per row (int32, over this program's columns), in its own partial slot."""
    tl.store(counts_ptr + count_row + t * R1, tl.sum(tl.where(spike & mask, 1, 0), axis=1), mask=row_mask)


@triton.jit
def tile_setup(T, R1, S, B, C, st, sb, sc, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """``step_tile``, the dense state's size (the checkpoints' row stride) and the first slot of each of
    the tile's rows in this program's [T, R1] partials (per-row counts or sums of step t at + t * R1)."""
    rows, rmask, cols, offs, mask, dense = step_tile(R1, S, B, C, st, sb, sc, BLOCK_R, BLOCK_S)
    n_state = tl.cast(R1, tl.int64) * S
    partial_row = tl.program_id(1).to(tl.int64) * T * R1 + rows
    return rows, rmask, cols, offs, mask, dense, n_state, partial_row


@triton.jit
def load_step(ptr, offs, st, t, T, mask):
    """Step t of a tensor in X's layout: (t < T, the tile's offsets at step t, its values in fp32, zero past T)."""
    valid = t < T
    at = offs + t.to(tl.int64) * st
    return valid, at, tl.load(ptr + at, mask=mask & valid, other=0.0).to(tl.float32)


@triton.jit
def x_of_step(x_ptr, offs, st, t, T, mask):
    """X at step t for the backward's recompute (zero past T)."""
    return tl.load(x_ptr + offs + t.to(tl.int64) * st, mask=mask & (t < T), other=0.0).to(tl.float32)


@triton.jit
def store_step(out_ptr, at, out, spike, valid, mask, rmask, counts_ptr, partial_row, t, R1, COUNT: tl.constexpr):
    """A forward step's output (in out_ptr's dtype) and, with COUNT, the tile's spikes per row."""
    tl.store(out_ptr + at, out.to(out_ptr.dtype.element_ty), mask=mask & valid)
    if COUNT:
        # spikes per (t, b, c) without a second pass (exact int32): the firing statistics, and for
        # binary input to a TCJA the pooled mean Z = count / HW (docs/tcja_dta.md "Gate after pooling, spike counts")
        store_row_counts(counts_ptr, partial_row, t, R1, spike, mask, rmask & valid)


@triton.jit
def bf16_round(y):
    """fp32 -> nearest bf16 (ties to even) -> fp32, spelt out in bits: Triton 3.6's interpreter truncates
    fp32 -> bf16 casts, which would make the tests see other inputs than the GPU (and the reference). NaN
    passes through (the carry could turn a NaN payload into inf)."""
    bits = y.to(tl.uint32, bitcast=True)
    bits = (bits + (((bits >> 16) & 1) + 0x7FFF)) & 0xFFFF0000
    return tl.where(y != y, y, bits.to(tl.float32, bitcast=True))


@triton.jit
def as_stored(y, ptr):
    """fp32 ``y`` rounded to ptr's element type and back: the value a tensor of that dtype stores (an unfused
    stage's output that the next stage reads)."""
    if ptr.dtype.element_ty == tl.bfloat16:
        return bf16_round(y)
    else:
        return y.to(ptr.dtype.element_ty).to(tl.float32)
