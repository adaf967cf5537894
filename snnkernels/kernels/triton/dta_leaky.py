"""Triton kernels of DTA on the spikes of the leaky neuron that reads the same X: ``Y = sig(NA * XA) * LIF(X)``.

In DTA-SNN the encoding block is ``DTA(X, LIF(X))``: the neuron and the attention read the same X, and
the attention's last sweep multiplies its map by the spikes. Here the neuron's time loop forms that map at
each step as it fires, so the spikes are never written, read back or kept for the backward:

    h_t = decay * v + gain * X_t + bias;  s_t = fire(h_t);  v = reset(h_t, s_t)
    Y_t = sig(NA_t * (X_t + a[t, b, c]) * (X_t + b[t, b, c])) * s_t,   NA_t = dec_t + bias_na[t, c] + X_t

(``a``, ``b`` are T-XA's per-row terms, computed beforehand from the pooled mean of X; with NA_RESIDUAL the
given tensor is T-NA's bias-free decoding conv and its bias and residual are added here, as the
``pooled_attention`` DTA sweep does).

The backward walks time in reverse with the leaky kernel's checkpoint-and-recompute schedule. At each step
it forms the product's gradients (dL/dNA, stored for T-NA's backward; dL/ds = dY * sig, kept in fp32 and
fed straight into the neuron's chain) and the row sums that give T-XA's gate gradients, and writes one
dL/dX holding the neuron's, T-XA's elementwise and the residual's shares (the pooled path of T-XA's mean
needs those row sums first and is added by the caller).

Layout and tiling as ``gated_leaky`` (NA and dL/dNA with NA's own strides: T-NA's [B, T, ...] output is
read and its gradient written in place, whatever X's layout): R1 = B * C rows of S = H * W contiguous values
per step; a program owns BLOCK_R rows x BLOCK_S columns for all T steps; row partial sums go to
[n_col_tiles, T, R1] and are summed in a fixed order by torch (deterministic, no atomics). fp32 arithmetic, op by op.
"""

import triton
import triton.language as tl

from .dta_terms import na_of, sigmoid
from .neuron_step import fire, forward_chunks, recompute_chunk, step, walk_step
from .row_tiles import load_step, row_values_at, store_step, tile_rows, tile_setup


@triton.jit
def _na_offsets(R1, B, C, nst, nsb, nsc, cols, BLOCK_R: tl.constexpr):
    """Offsets of the tile's elements in NA at step 0: NA keeps its own strides (T-NA's output is
    [B, T * C, H, W], i.e. the [B, T] storage, whatever X's is), so it is never copied to X's layout."""
    _, _, base = tile_rows(R1, B, C, nst, nsb, nsc, BLOCK_R)
    return base[:, None] + cols[None, :]


@triton.jit
def _step_loads(
    x_ptr, na_ptr, a_ptr, b_ptr, bias_ptr, offs, st, t, T, na_offs, nst, rows, rmask, mask, R1, RESIDUAL: tl.constexpr
):
    """Step t's inputs, fp32 and zero past T: X_t and NA_t (as loaded) of the tile, T-XA's a and b and (if
    RESIDUAL) T-NA's decoding bias of its rows ([BLOCK_R, 1]). NA_t is formed by ``na_of``."""
    valid, _at, x = load_step(x_ptr, offs, st, t, T, mask)
    a = row_values_at(a_ptr, t, rows, rmask & valid, R1)
    b = row_values_at(b_ptr, t, rows, rmask & valid, R1)
    if RESIDUAL:
        na_bias = row_values_at(bias_ptr, t, rows, rmask & valid, R1)
    else:
        na_bias = 0.0
    na = tl.load(na_ptr + na_offs + t.to(tl.int64) * nst, mask=mask & valid, other=0.0).to(tl.float32)
    return x, na, a, b, na_bias


@triton.jit
def _fwd_load(t, T, args, FLAGS: tl.constexpr):
    """Step t's inputs of the forward (``forward_chunks``' load; ``_step_loads``)."""
    (
        x_ptr,
        na_ptr,
        a_ptr,
        b_ptr,
        bias_ptr,
        _y,
        _c,
        offs,
        st,
        na_offs,
        nst,
        rows,
        rmask,
        mask,
        _r,
        R1,
        _d,
        _g,
        _b,
        _vt,
        _vr,
    ) = args
    NA_RESIDUAL: tl.constexpr = FLAGS[0]
    return _step_loads(
        x_ptr, na_ptr, a_ptr, b_ptr, bias_ptr, offs, st, t, T, na_offs, nst, rows, rmask, mask, R1, NA_RESIDUAL
    )


@triton.jit
def _fwd_step(v, t, T, inputs, args, FLAGS: tl.constexpr):
    """Step t of the forward (``forward_chunks``' step): the neuron fires on X_t and Y_t is formed from its spikes."""
    (
        x_ptr,
        na_ptr,
        a_ptr,
        b_ptr,
        bias_ptr,
        y_ptr,
        counts_ptr,
        offs,
        st,
        na_offs,
        nst,
        rows,
        rmask,
        mask,
        count_row,
        R1,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
    ) = args
    NA_RESIDUAL: tl.constexpr = FLAGS[0]
    HARD_RESET: tl.constexpr = FLAGS[1]
    STRICT: tl.constexpr = FLAGS[2]
    COUNT: tl.constexpr = FLAGS[3]
    x, na, a, b, na_bias = inputs
    valid = t < T
    at = offs + t.to(tl.int64) * st
    _h, spike, v = step(v, x, decay, gain, bias, valid, v_threshold, v_reset, STRICT, HARD_RESET)
    na = na_of(na, na_bias, x, NA_RESIDUAL)
    y = sigmoid(na * ((x + a) * (x + b))) * tl.where(spike, 1.0, 0.0)
    # with COUNT: the neuron's firing statistics, without its spikes ever being stored
    store_step(y_ptr, at, y, spike, valid, mask, rmask, counts_ptr, count_row, t, R1, COUNT)
    return v


@triton.jit
def _input_of_step(t, T, args, FLAGS: tl.constexpr):
    """Step t of the backward's recompute: ((X_t, NA_t, a, b, bias as ``_step_loads``, dL/dY_t), X_t), all loaded
    here, before the walk's first store."""
    x_ptr, na_ptr, a_ptr, b_ptr, bias_ptr, grad_y_ptr, offs, st, na_offs, nst, rows, rmask, mask, R1 = args
    NA_RESIDUAL: tl.constexpr = FLAGS[0]
    x, na, a, b, na_bias = _step_loads(
        x_ptr, na_ptr, a_ptr, b_ptr, bias_ptr, offs, st, t, T, na_offs, nst, rows, rmask, mask, R1, NA_RESIDUAL
    )
    _valid, _at, gy = load_step(grad_y_ptr, offs, st, t, T, mask)
    return (x, na, a, b, na_bias, gy), x


@triton.jit(do_not_specialize=["T"])
def dta_leaky_fwd_kernel(
    x_ptr,  # [T, B, C, H, W] the conv + BN output, fp32/fp16/bf16
    na_ptr,  # T-NA's output (or its bias-free decoding conv if NA_RESIDUAL), its own strides (nst, nsb, nsc)
    a_ptr,
    b_ptr,  # [T, B, C] fp32: T-XA's terms of (X + a)(X + b)
    bias_ptr,  # [T, B, C] fp32 decoding bias per row if NA_RESIDUAL
    y_ptr,  # out, X's strides and dtype
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
    nst,
    nsb,
    nsc,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    NA_RESIDUAL: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    TRAINING: tl.constexpr,
    COUNT: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, rmask, cols, offs, mask, dense, n_state, count_row = tile_setup(T, R1, S, B, C, st, sb, sc, BLOCK_R, BLOCK_S)
    na_offs = _na_offsets(R1, B, C, nst, nsb, nsc, cols, BLOCK_R)
    v = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32) + v_init
    args = (
        x_ptr,
        na_ptr,
        a_ptr,
        b_ptr,
        bias_ptr,
        y_ptr,
        counts_ptr,
        offs,
        st,
        na_offs,
        nst,
        rows,
        rmask,
        mask,
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
        (NA_RESIDUAL, HARD_RESET, STRICT, COUNT),
        TRAINING,
        CHUNK,
    )


@triton.jit(do_not_specialize=["T"])
def dta_leaky_bwd_kernel(
    grad_y_ptr,  # [T, B, C, H, W] dL/dY, X's strides
    x_ptr,
    na_ptr,
    a_ptr,
    b_ptr,
    bias_ptr,
    ckpt_ptr,
    grad_x_ptr,  # out, fp32, X's strides: the neuron's + T-XA's elementwise + the residual's dL/dX
    grad_na_ptr,  # out, NA's dtype and strides: dL/dNA
    sum_ptr,
    dot_ptr,
    na_sum_ptr,  # out, fp32 [n_col_tiles, T, R1]: sum dxa, sum dxa * x, sum dNA (NA_RESIDUAL)
    T,
    R1,
    S,
    B,
    C,
    st,
    sb,
    sc,
    nst,
    nsb,
    nsc,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    sg_param,
    NA_RESIDUAL: tl.constexpr,
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
    na_offs = _na_offsets(R1, B, C, nst, nsb, nsc, cols, BLOCK_R)
    grad_v = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    n_chunks = tl.cdiv(T, CHUNK)
    for j in range(n_chunks):
        t0, _v, hs, xs = recompute_chunk(
            n_chunks - 1 - j,
            ckpt_ptr,
            n_state,
            dense,
            mask,
            v_init,
            T,
            _input_of_step,
            (x_ptr, na_ptr, a_ptr, b_ptr, bias_ptr, grad_y_ptr, offs, st, na_offs, nst, rows, rmask, mask, R1),
            (NA_RESIDUAL,),
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
            valid = t < T
            at = offs + t.to(tl.int64) * st
            h = hs[k]
            x, na, a, b, na_bias, gy = xs[k]
            s = tl.where(fire(h, v_threshold, STRICT), 1.0, 0.0)
            na = na_of(na, na_bias, x, NA_RESIDUAL)
            na_at = na_offs + t.to(tl.int64) * nst
            # the product Y = sig(NA * XA) * s, as the pooled-attention DTA backward
            xa = (x + a) * (x + b)
            sig = sigmoid(na * xa)
            dp = gy * s * (sig * (1.0 - sig))
            dxa = dp * na
            dna = dp * xa
            tl.store(grad_na_ptr + na_at, dna.to(grad_na_ptr.dtype.element_ty), mask=mask & valid)
            dx = dxa * (x + b) + dxa * (x + a)
            if NA_RESIDUAL:
                dx = dx + dna
                tl.store(na_sum_ptr + partial_row + t * R1, tl.sum(dna, axis=1), mask=rmask & valid)
            tl.store(sum_ptr + partial_row + t * R1, tl.sum(dxa, axis=1), mask=rmask & valid)
            tl.store(dot_ptr + partial_row + t * R1, tl.sum(dxa * x, axis=1), mask=rmask & valid)
            # the neuron, driven by dL/ds = dY * sig (the spikes' only consumer is the product)
            grad_h, grad_v = walk_step(
                gy * sig,
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
            tl.store(grad_x_ptr + at, dx + grad_h * gain, mask=mask & valid)
