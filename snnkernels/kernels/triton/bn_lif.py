"""Triton kernels of ``bn_lif``: BatchNorm applied as the leaky neuron loads its input (docs/bn_lif.md).

The neuron's input at step t is BatchNorm's output ``y = x * scale[c] + shift[c]`` (fp32, rounded to x's dtype as
``nn.BatchNorm`` stores it), so y is never written nor kept for the backward: the backward rebuilds it from x.
Layout as the gated neuron's (``gated_leaky.py``): x [T, B, C, H, W] is walked as rows of S = H * W contiguous
values, row (t, b, c) at ``t * st + b * sb + c * sc``; tokens [T, B, C, N] arrive as H = 1, W = N.

- ``bn_lif_stats_kernel``: one [BLOCK_R, BLOCK_S] tile of rows per program; per row of the tile its sum and its
  sum of squared deviations from the tile-row's own mean (fp32), in fixed slots [n_col_tiles, R]; the host
  combines them per channel in fp64 (Chan's parallel formula), in a fixed order: deterministic, no atomics,
  and no cancellation of a sum of squares against a large mean (docs/bn_lif.md "Batch statistics").
- ``bn_lif_fwd_kernel``: the neuron's time loop (``neuron_step.forward_chunks``) on y; with ``PACK`` it also
  writes the spikes at 1 bit each in spike_pack's layout (docs/spike_pack.md "Packed by the neuron"; S % 8 == 0).
- ``bn_lif_bwd_kernel``: the recompute and walk back (``neuron_step.recompute_chunk`` / ``walk_step``) giving
  dL/dy = gain * dL/dh per element, plus per-row sums over the tile's columns and all steps of dL/dy,
  dL/dy * x_hat and the neuron coefficients' terms, in fixed slots [5, n_col_tiles, R1].
- ``bn_lif_input_grad_kernel``: BatchNorm's input gradient from dL/dy and the per-channel sums (batch statistics).
"""

import triton
import triton.language as tl

from .neuron_step import forward_chunks, recompute_chunk, state_after, step, walk_step
from .row_tiles import as_stored, tile, tile_rows, tile_setup, x_of_step
from .spike_pack import spike_bytes_2d


@triton.jit
def _per_channel(ptr, rows, rmask, C):
    """ptr[c] of the tile's rows (c = row % C) as a [BLOCK_R, 1] column, fp32."""
    return tl.load(ptr + rows % C, mask=rmask, other=0.0).to(tl.float32)[:, None]


@triton.jit
def _bn_output(x, scale, shift, x_ptr):
    """BatchNorm's output x * scale + shift in fp32, rounded to x's dtype as the unfused BatchNorm stores it."""
    return as_stored(x * scale + shift, x_ptr)


@triton.jit
def bn_lif_stats_kernel(
    x_ptr,  # [T, B, C, H, W] fp32 / fp16 / bf16
    sum_ptr,  # out, fp32 [n_col_tiles, R]: sum of the row's values in this program's columns
    m2_ptr,  # out, fp32 [n_col_tiles, R]: sum of their squared deviations from that tile-row's mean
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
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    offs, mask = tile(base, rmask, tl.program_id(1) * BLOCK_S, S, BLOCK_S)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)  # [BLOCK_R, BLOCK_S]
    count = tl.sum(tl.where(mask, 1.0, 0.0), axis=1)
    total = tl.sum(x, axis=1)
    mean = total / tl.maximum(count, 1.0)
    d = tl.where(mask, x - mean[:, None], 0.0)
    slot = tl.program_id(1).to(tl.int64) * R + rows
    tl.store(sum_ptr + slot, total, mask=rmask)
    tl.store(m2_ptr + slot, tl.sum(d * d, axis=1), mask=rmask)


@triton.jit
def _fwd_load(t, T, args, FLAGS: tl.constexpr):
    """Step t's x of the tile (``forward_chunks``' load)."""
    return x_of_step(args[0], args[2], args[3], t, T, args[4])  # x_ptr, offs, st, mask


@triton.jit
def _fwd_step(v, t, T, x, args, FLAGS: tl.constexpr):
    """Step t of the forward (``forward_chunks``' step): y_t = BN(x_t) drives the neuron."""
    # (a tuple's slice is not a tuple in compiled Triton: unpacked whole)
    (x_ptr, spikes_ptr, offs, st, mask, scale, shift, a, b, c, v_threshold, v_reset,
     packed_ptr, boffs, bmask, brow) = args  # fmt: skip
    HARD_RESET: tl.constexpr = FLAGS[0]
    STRICT: tl.constexpr = FLAGS[1]
    PACK: tl.constexpr = FLAGS[2]
    BLOCK_R: tl.constexpr = FLAGS[3]
    BLOCK_S: tl.constexpr = FLAGS[4]
    valid = t < T
    at = offs + t.to(tl.int64) * st
    _h, spike, v = step(v, _bn_output(x, scale, shift, x_ptr), a, b, c, valid, v_threshold, v_reset, STRICT, HARD_RESET)
    # bool -> fp32 -> storage type (Triton 3.6's interpreter miscasts bool straight to bf16)
    tl.store(spikes_ptr + at, tl.where(spike, 1.0, 0.0).to(spikes_ptr.dtype.element_ty), mask=mask & valid)
    if PACK:  # step t's bytes of the tile's rows: elements (t * R1 + row) * S + col of the logical order
        packed = spike_bytes_2d(spike, BLOCK_R, BLOCK_S // 8)
        tl.store(packed_ptr + boffs + t.to(tl.int64) * brow, packed, mask=bmask & valid)
    return v


@triton.jit
def _input_of_step(t, T, args, FLAGS: tl.constexpr):
    """Step t's ((x_t, dL/ds_t), y_t = BN(x_t)) for the backward's recompute: dL/ds is loaded here with x, before the
    walk's first store."""
    x_ptr, grad_spikes_ptr, offs, st, mask, scale, shift = args
    x = x_of_step(x_ptr, offs, st, t, T, mask)
    return (x, x_of_step(grad_spikes_ptr, offs, st, t, T, mask)), _bn_output(x, scale, shift, x_ptr)


@triton.jit(do_not_specialize=["T"])
def bn_lif_fwd_kernel(
    x_ptr,  # [T, B, C, H, W] BatchNorm's input (the conv output), fp32 / fp16 / bf16
    scale_ptr,  # [C] fp32: weight * invstd
    shift_ptr,  # [C] fp32: bias - mean * scale
    decay_ptr,  # [C] fp32 neuron coefficients of h = decay * v + gain * y + bias
    gain_ptr,
    bias_ptr,
    spikes_ptr,  # out, x's strides and dtype
    ckpt_ptr,  # [cdiv(T, CHUNK) - 1, R1 * S] out, fp32, if TRAINING
    packed_ptr,  # [T * R1 * S / 8] out, uint8, if PACK: the spikes in spike_pack's layout (S % 8 == 0)
    T,
    R1,
    S,
    B,
    C,
    st,
    sb,
    sc,
    v_threshold,
    v_reset,
    v_init,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    TRAINING: tl.constexpr,
    PACK: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, rmask, cols, offs, mask, dense, n_state, _slot = tile_setup(T, R1, S, B, C, st, sb, sc, BLOCK_R, BLOCK_S)
    # with PACK: the tile's bytes at step 0 (row-major over [T, R1, S], so whatever x's strides), their mask and
    # the bytes of a step; S % 8 == 0, so a tile's bytes are whole and no other program writes them
    byte_cols = tl.program_id(1) * (BLOCK_S // 8) + tl.arange(0, (BLOCK_S + 7) // 8)  # unused if BLOCK_S < 8
    boffs = rows.to(tl.int64)[:, None] * (S // 8) + byte_cols[None, :]
    bmask = rmask[:, None] & (byte_cols < S // 8)[None, :]
    brow = tl.cast(R1, tl.int64) * (S // 8)
    scale = _per_channel(scale_ptr, rows, rmask, C)
    shift = _per_channel(shift_ptr, rows, rmask, C)
    a = _per_channel(decay_ptr, rows, rmask, C)
    b = _per_channel(gain_ptr, rows, rmask, C)
    c = _per_channel(bias_ptr, rows, rmask, C)
    v = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32) + v_init
    args = (x_ptr, spikes_ptr, offs, st, mask, scale, shift, a, b, c, v_threshold, v_reset)
    args = args + (packed_ptr, boffs, bmask, brow)
    # the flags tuple written in the call: a tuple of constexprs assigned to a name first reaches the step as
    # run-time values in compiled Triton
    forward_chunks(
        v, T, ckpt_ptr, n_state, dense, mask, _fwd_load, _fwd_step, args, (HARD_RESET, STRICT, PACK, BLOCK_R, BLOCK_S),
        TRAINING, CHUNK,
    )  # fmt: skip


@triton.jit(do_not_specialize=["T"])
def bn_lif_bwd_kernel(
    grad_spikes_ptr,  # [T, B, C, H, W] dL/ds, x's strides
    x_ptr,
    scale_ptr,
    shift_ptr,
    mean_ptr,  # [C] fp32: the mean BatchNorm normalised with (batch or running)
    invstd_ptr,  # [C] fp32: its 1 / sqrt(var + eps)
    decay_ptr,
    gain_ptr,
    bias_ptr,
    ckpt_ptr,
    grad_out_ptr,  # out, x's strides: dL/dy in fp32 if BATCH_STATS, else dL/dx = scale * dL/dy in x's dtype
    sums_ptr,  # out, fp32 [5, n_col_tiles, R1]: dL/dy, dL/dy * x_hat, dL/dh * v_{t-1}, dL/dh * y, dL/dh
    T,
    R1,
    S,
    B,
    C,
    st,
    sb,
    sc,
    v_threshold,
    v_reset,
    v_init,
    sg_param,
    BATCH_STATS: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    NEED_GRAD_DECAY: tl.constexpr,
    NEED_GRAD_GAIN: tl.constexpr,
    NEED_GRAD_BIAS: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, rmask, cols, offs, mask, dense, n_state, _slot = tile_setup(T, R1, S, B, C, st, sb, sc, BLOCK_R, BLOCK_S)
    scale = _per_channel(scale_ptr, rows, rmask, C)
    shift = _per_channel(shift_ptr, rows, rmask, C)
    mean = _per_channel(mean_ptr, rows, rmask, C)
    invstd = _per_channel(invstd_ptr, rows, rmask, C)
    a = _per_channel(decay_ptr, rows, rmask, C)
    b = _per_channel(gain_ptr, rows, rmask, C)
    c = _per_channel(bias_ptr, rows, rmask, C)
    v_init_tile = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32) + v_init
    grad_v = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    acc_dy = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    acc_dy_xhat = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    acc_decay = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    acc_gain = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    acc_bias = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    n_chunks = tl.cdiv(T, CHUNK)
    for j in range(n_chunks):
        t0, v_start, hs, xs = recompute_chunk(
            n_chunks - 1 - j,
            ckpt_ptr,
            n_state,
            dense,
            mask,
            v_init_tile,
            T,
            _input_of_step,
            (x_ptr, grad_spikes_ptr, offs, st, mask, scale, shift),
            (),
            a,
            b,
            c,
            v_threshold,
            v_reset,
            STRICT,
            HARD_RESET,
            CHUNK,
        )
        # The walk back stays in the kernel: its carried sums and per-step stores are its own.
        for k in tl.static_range(CHUNK - 1, -1, -1):
            t = t0 + k
            valid = t < T
            at = offs + t.to(tl.int64) * st
            x, grad_s = xs[k]
            grad_h, grad_v = walk_step(
                grad_s,
                grad_v,
                hs[k],
                a,
                mask & valid,
                v_threshold,
                v_reset,
                sg_param,
                HARD_RESET,
                STRICT,
                DETACH_RESET,
                SG_ID,
            )
            grad_y = grad_h * b
            if BATCH_STATS:
                tl.store(grad_out_ptr + at, grad_y, mask=mask & valid)
            else:
                tl.store(grad_out_ptr + at, (grad_y * scale).to(grad_out_ptr.dtype.element_ty), mask=mask & valid)
            acc_dy += grad_y
            acc_dy_xhat += grad_y * ((x - mean) * invstd)
            if NEED_GRAD_DECAY:
                # v_{t-1}: rebuilt from h_{t-1} rather than stashed, to save registers
                if k == 0:
                    v_prev = v_start
                else:
                    v_prev = state_after(hs[k - 1], v_threshold, v_reset, STRICT, HARD_RESET)
                acc_decay += grad_h * v_prev
            if NEED_GRAD_GAIN:
                acc_gain += grad_h * _bn_output(x, scale, shift, x_ptr)
            if NEED_GRAD_BIAS:
                acc_bias += grad_h
    n_part = tl.num_programs(1).to(tl.int64) * R1
    slot = tl.program_id(1).to(tl.int64) * R1 + rows
    tl.store(sums_ptr + slot, tl.sum(acc_dy, axis=1), mask=rmask)
    tl.store(sums_ptr + n_part + slot, tl.sum(acc_dy_xhat, axis=1), mask=rmask)
    if NEED_GRAD_DECAY:
        tl.store(sums_ptr + 2 * n_part + slot, tl.sum(acc_decay, axis=1), mask=rmask)
    if NEED_GRAD_GAIN:
        tl.store(sums_ptr + 3 * n_part + slot, tl.sum(acc_gain, axis=1), mask=rmask)
    if NEED_GRAD_BIAS:
        tl.store(sums_ptr + 4 * n_part + slot, tl.sum(acc_bias, axis=1), mask=rmask)


@triton.jit
def bn_lif_input_grad_kernel(
    grad_y_ptr,  # [T, B, C, H, W] fp32 dL/dy, x's strides
    x_ptr,
    channel_ptr,  # fp32 [5, C]: scale, mean, invstd, and the batch means of dL/dy and of dL/dy * x_hat
    grad_x_ptr,  # out, x's strides and dtype
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
    """dL/dx = scale * (dL/dy - mean(dL/dy) - x_hat * mean(dL/dy * x_hat)) (docs/bn_lif.md "Backward")."""
    rows, rmask, base = tile_rows(R, B, C, st, sb, sc, BLOCK_R)
    scale = _per_channel(channel_ptr, rows, rmask, C)
    mean = _per_channel(channel_ptr + C, rows, rmask, C)
    invstd = _per_channel(channel_ptr + 2 * C, rows, rmask, C)
    m_dy = _per_channel(channel_ptr + 3 * C, rows, rmask, C)
    m_dy_xhat = _per_channel(channel_ptr + 4 * C, rows, rmask, C)
    for s0 in range(0, S, BLOCK_S):
        offs, mask = tile(base, rmask, s0, S, BLOCK_S)
        dy = tl.load(grad_y_ptr + offs, mask=mask, other=0.0)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        grad_x = scale * (dy - m_dy - ((x - mean) * invstd) * m_dy_xhat)
        tl.store(grad_x_ptr + offs, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)
