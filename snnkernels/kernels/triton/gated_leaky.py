"""Triton kernels of the gated leaky neuron: an attention gate applied inside the neuron's time loop.

The neuron's input at step t is ``y_t = pre(X_t) * scale[t, b, c] (* map[b, p])`` with pre = ReLU (MA-SNN's
released attention, docs/ma_snn.md "Gates inside the neuron") or the identity (TCJA's gate), so the gated
tensor Y is never written nor read back: the attention costs its reduction sweeps only.

Layout as ``pooled_attention``: X [T, B, C, H, W] is walked as R1 = B * C rows of S = H * W contiguous values per
step; row (b, c) of step t starts at ``t * st + b * sb + c * sc``. A program owns a tile of BLOCK_R rows x
BLOCK_S columns (grid: row tiles x column tiles) and walks the whole time axis with the state in
registers, so the backward can also reduce the gate's gradients over its tile:

- per (t, row): sum over the tile's columns of dL/dy * pre(X) (* map)  -> partials [n_col_tiles, T, R1];
- per (row, column): sum over t of dL/dy * pre(X) * scale              -> [R1, S], reduced over c on the host.

Both are written in fixed positions and summed by torch in a fixed order: deterministic, no atomics.
The recompute schedule is the leaky kernel's (``leaky.py``): fp32 checkpoints of v every CHUNK steps in
the dense [R1 * S] order. The neuron's coefficients are scalars here (decay, gain, bias of
``h = decay * v + gain * y + bias``, state starting at v_init); the charge is rounded op by op as in the
eager reference.
"""

import triton
import triton.language as tl

from .neuron_step import forward_chunks, recompute_chunk, step, walk_step
from .row_tiles import as_stored, load_step, row_values_at, store_step, tile_setup


@triton.jit
def _pre(x, RELU: tl.constexpr):
    if RELU:
        return tl.maximum(x, 0.0)
    else:
        return x


@triton.jit
def _gated_input(x, g, m, RELU: tl.constexpr, x_ptr):
    """The neuron's input pre(x) * g * m, rounded to X's dtype as the unfused attention stores it (so the
    spikes equal the unfused path's in every dtype), computed in fp32."""
    return as_stored(_pre(x, RELU) * g * m, x_ptr)


@triton.jit
def _spatial_map(map_ptr, rows, cols, mask, S, C, HAS_MAP: tl.constexpr):
    """map[b, p] of the tile's elements (ones without a map)."""
    if HAS_MAP:
        return tl.load(map_ptr + (rows // C).to(tl.int64)[:, None] * S + cols[None, :], mask=mask, other=0.0)
    else:
        return 1.0


@triton.jit
def _fwd_load(t, T, args, FLAGS: tl.constexpr):
    """Step t's inputs of the gated forward (``forward_chunks``' load): X_t of the tile and scale[t] of its rows."""
    x_ptr, scale_ptr, _s, _c, offs, st, rows, rmask, mask, _m, _p, R1, _d, _g, _b, _vt, _vr = args
    valid, _at, x = load_step(x_ptr, offs, st, t, T, mask)
    return x, row_values_at(scale_ptr, t, rows, rmask & valid, R1)


@triton.jit
def _fwd_step(v, t, T, inputs, args, FLAGS: tl.constexpr):
    """Step t of the gated forward (``forward_chunks``' step): y_t = pre(X_t) * scale * map drives the neuron."""
    (
        x_ptr,
        scale_ptr,
        spikes_ptr,
        counts_ptr,
        offs,
        st,
        rows,
        rmask,
        mask,
        m,
        partial_row,
        R1,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
    ) = args
    RELU: tl.constexpr = FLAGS[0]
    HAS_MAP: tl.constexpr = FLAGS[1]
    HARD_RESET: tl.constexpr = FLAGS[2]
    STRICT: tl.constexpr = FLAGS[3]
    COUNT: tl.constexpr = FLAGS[4]
    if not HAS_MAP:
        m = 1.0  # the tuple carried it as a run-time 1.0
    x, g = inputs
    valid = t < T
    at = offs + t.to(tl.int64) * st
    y = _gated_input(x, g, m, RELU, x_ptr)
    _h, spike, v = step(v, y, decay, gain, bias, valid, v_threshold, v_reset, STRICT, HARD_RESET)
    store_step(
        spikes_ptr, at, tl.where(spike, 1.0, 0.0), spike, valid, mask, rmask, counts_ptr, partial_row, t, R1, COUNT
    )
    return v


@triton.jit
def _input_of_step(t, T, args, FLAGS: tl.constexpr):
    """Step t of the backward's recompute: ((pre(X_t), scale[t] of the tile's rows, dL/ds_t), the neuron's input
    y_t). The walk back reads the first three, loaded here with X_t before the walk's first store."""
    x_ptr, scale_ptr, grad_spikes_ptr, offs, st, rows, rmask, mask, m, R1 = args
    RELU: tl.constexpr = FLAGS[0]
    HAS_MAP: tl.constexpr = FLAGS[1]
    if not HAS_MAP:
        m = 1.0  # the tuple carried it as a run-time 1.0
    valid, _at, x = load_step(x_ptr, offs, st, t, T, mask)
    g = row_values_at(scale_ptr, t, rows, rmask & valid, R1)
    _valid, _at, grad_s = load_step(grad_spikes_ptr, offs, st, t, T, mask)
    return (_pre(x, RELU), g, grad_s), _gated_input(x, g, m, RELU, x_ptr)


@triton.jit(do_not_specialize=["T"])
def gated_leaky_fwd_kernel(
    x_ptr,  # [T, B, C, H, W] the attention's input, fp32/fp16/bf16
    scale_ptr,  # [T, B, C] fp32 gate
    map_ptr,  # [B, H * W] fp32 spatial gate if HAS_MAP
    spikes_ptr,  # out, X's strides and dtype
    ckpt_ptr,  # [cdiv(T, CHUNK) - 1, R1 * S] out, fp32, if TRAINING
    counts_ptr,  # [n_col_tiles, T, R1] out, int32 spikes of each row in this program's columns, if COUNT
    T,
    R1,
    S,
    B,
    C,
    st,
    sb,
    sc,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    RELU: tl.constexpr,
    HAS_MAP: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    TRAINING: tl.constexpr,
    COUNT: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, rmask, cols, offs, mask, dense, n_state, count_row = tile_setup(T, R1, S, B, C, st, sb, sc, BLOCK_R, BLOCK_S)
    m = _spatial_map(map_ptr, rows, cols, mask, S, C, HAS_MAP)
    v = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32) + v_init
    args = (
        x_ptr,
        scale_ptr,
        spikes_ptr,
        counts_ptr,
        offs,
        st,
        rows,
        rmask,
        mask,
        m,
        count_row,
        R1,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
    )
    forward_chunks(
        v,
        T,
        ckpt_ptr,
        n_state,
        dense,
        mask,
        _fwd_load,
        _fwd_step,
        args,
        (RELU, HAS_MAP, HARD_RESET, STRICT, COUNT),
        TRAINING,
        CHUNK,
    )


@triton.jit(do_not_specialize=["T"])
def gated_leaky_bwd_kernel(
    grad_spikes_ptr,  # [T, B, C, H, W] dL/ds, X's strides
    x_ptr,
    scale_ptr,
    map_ptr,
    ckpt_ptr,
    grad_x_ptr,  # out, X's strides and dtype: dL/dy * scale * map * pre'(X) (the gate's own path only)
    grad_scale_ptr,  # out, fp32 [n_col_tiles, T, R1] partial sums over this tile's columns
    grad_map_ptr,  # out, fp32 [R1, S] sums over t, if HAS_MAP
    T,
    R1,
    S,
    B,
    C,
    st,
    sb,
    sc,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    sg_param,
    RELU: tl.constexpr,
    HAS_MAP: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, rmask, cols, offs, mask, dense, n_state, partial_row = tile_setup(
        T, R1, S, B, C, st, sb, sc, BLOCK_R, BLOCK_S
    )
    m = _spatial_map(map_ptr, rows, cols, mask, S, C, HAS_MAP)
    grad_v = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    acc_map = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    n_chunks = tl.cdiv(T, CHUNK)
    for j in range(n_chunks):
        inputs = (x_ptr, scale_ptr, grad_spikes_ptr, offs, st, rows, rmask, mask, m, R1)
        t0, _v, hs, xs = recompute_chunk(
            n_chunks - 1 - j,
            ckpt_ptr,
            n_state,
            dense,
            mask,
            v_init,
            T,
            _input_of_step,
            inputs,
            (RELU, HAS_MAP),
            decay,
            gain,
            bias,
            v_threshold,
            v_reset,
            STRICT,
            HARD_RESET,
            CHUNK,
        )
        # The walk back stays in each kernel: its carried sums and per-step stores are the kernel's own.
        for k in tl.static_range(CHUNK - 1, -1, -1):
            t = t0 + k
            h = hs[k]
            x, g, grad_s = xs[k]
            valid = t < T
            at = offs + t.to(tl.int64) * st
            grad_h, grad_v = walk_step(
                grad_s,
                grad_v,
                h,
                decay,
                mask & valid,
                v_threshold,
                v_reset,
                sg_param,
                HARD_RESET,
                STRICT,
                DETACH_RESET,
                SG_ID,
            )
            grad_y = grad_h * gain
            grad_x = grad_y * g * m
            if RELU:
                grad_x = tl.where(x > 0.0, grad_x, 0.0)
            tl.store(grad_x_ptr + at, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask & valid)
            gx = grad_y * x
            tl.store(grad_scale_ptr + partial_row + t * R1, tl.sum(gx * m, axis=1), mask=rmask & valid)
            if HAS_MAP:
                acc_map += gx * g
    if HAS_MAP:
        tl.store(grad_map_ptr + dense, acc_map, mask=mask)
