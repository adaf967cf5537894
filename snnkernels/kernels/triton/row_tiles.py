"""Tiles of the kernels that walk [T, B, C, H, W] tensors as rows of contiguous H * W planes.

Row r = (t * B + b) * C + c starts at ``t * st + b * sb + c * sc``, so the library's [T, B] layout and the
transposed [B, T] storage are both walked in place. A sweep's program owns BLOCK_R rows and walks them in
BLOCK_S steps (``tile_rows``, ``tile``); a neuron's program owns BLOCK_R rows x BLOCK_S columns of one step's
B * C rows and walks all T steps (``step_tile``, ``row_values_at``, ``store_row_counts``).
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
