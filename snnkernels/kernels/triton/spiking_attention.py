"""Triton kernels of the spiking transformers' attention cores (docs/spiking_attention.md).

Every tensor is a logical [T, B, heads, R, P] with its own five strides (so the official [T, B, C, N] layouts
are read in place); offsets are int64. The attention's LIF runs over t inside each program with its membrane in
registers (``neuron_step``), fp32, op by op (launched with ``enable_fp_fusion=False``).

- SSA (docs/spiking_attention.md "Fused SSA: what is stored, what is recomputed"): a program owns (b, head,
  BLOCK_N rows of Q) and loops t: ``X_t = scale Q_t KV_t`` for its rows (``KV_t = K_t^T V_t``, [d, d], an fp32
  input), the LIF step, the spikes stored. The backward kernel recomputes X and the membrane, writes h_t into an fp32
  workspace, then walks t back and overwrites it with ``scale * dL/dX_t``.
- Gate sweeps (docs/spiking_attention.md "Fused gate sweeps (SDSA, Q-K)"): a program owns (b, head, BLOCK_P
  columns) and loops t: ``Z_t = sum_r A (* B)`` over the R axis, the LIF step on Z, ``Y_t = X_t * spikes``.
"""

import triton
import triton.language as tl

from .neuron_step import step, walk_step


@triton.jit
def _offsets(t, bi, hi, rows, cols, s0, s1, s2, s3, s4):
    """int64 offsets [len(rows), len(cols)] of element (t, bi, hi, rows, cols) of a strided 5-D tensor."""
    base = tl.cast(t, tl.int64) * s0 + bi.to(tl.int64) * s1 + hi.to(tl.int64) * s2
    return base + rows.to(tl.int64)[:, None] * s3 + cols.to(tl.int64)[None, :] * s4


@triton.jit
def _strided(t, bi, hi, rows, cols, s):
    """``_offsets`` with the strides as a tuple."""
    return _offsets(t, bi, hi, rows, cols, s[0], s[1], s[2], s[3], s[4])


@triton.jit
def _attention_input(q_ptr, kv_ptr, t, bi, hi, rows, cols, mask, D, qs, kvs, scale, BLOCK_D: tl.constexpr):
    """X_t = scale * Q_t KV_t for the program's rows [BLOCK_N, BLOCK_D]; KV_t = K_t^T V_t [d, d] is an input (fp32,
    exact integers on binary K, V)."""
    dmask = cols < D
    kv_offs = _strided(t, bi, hi, cols, cols, kvs)
    kv = tl.load(kv_ptr + kv_offs, mask=dmask[:, None] & dmask[None, :], other=0.0)
    q = tl.load(q_ptr + _strided(t, bi, hi, rows, cols, qs), mask=mask, other=0.0).to(tl.float32)
    return tl.dot(q, kv, input_precision="tf32x3") * scale


@triton.jit(do_not_specialize=["T"])
def ssa_fwd_kernel(
    q_ptr,
    kv_ptr,
    s_ptr,
    T,
    H,
    N,
    D,
    qs0,
    qs1,
    qs2,
    qs3,
    qs4,
    kvs0,
    kvs1,
    kvs2,
    kvs3,
    kvs4,
    ss0,
    ss1,
    ss2,
    ss3,
    ss4,
    scale,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    HARD_RESET: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Spikes S_t = LIF(scale Q_t (K_t^T V_t)) of one (b, head) and BLOCK_N rows, for every t."""
    bh = tl.program_id(0)
    bi, hi = bh // H, bh % H
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows < N)[:, None] & (cols < D)[None, :]
    qs = (qs0, qs1, qs2, qs3, qs4)
    kvs = (kvs0, kvs1, kvs2, kvs3, kvs4)
    v = tl.zeros([BLOCK_N, BLOCK_D], tl.float32) + v_init  # [BLOCK_N, BLOCK_D]
    for t in range(T):
        x = _attention_input(q_ptr, kv_ptr, t, bi, hi, rows, cols, mask, D, qs, kvs, scale, BLOCK_D)
        _, spike, v = step(v, x, decay, gain, bias, True, v_threshold, v_reset, False, HARD_RESET)
        s_offs = _offsets(t, bi, hi, rows, cols, ss0, ss1, ss2, ss3, ss4)
        tl.store(s_ptr + s_offs, tl.where(spike, 1.0, 0.0).to(s_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["T"])
def ssa_bwd_kernel(
    g_ptr,
    q_ptr,
    kv_ptr,
    w_ptr,
    T,
    H,
    N,
    D,
    gs0,
    gs1,
    gs2,
    gs3,
    gs4,
    qs0,
    qs1,
    qs2,
    qs3,
    qs4,
    kvs0,
    kvs1,
    kvs2,
    kvs3,
    kvs4,
    ws0,
    ws1,
    ws2,
    ws3,
    ws4,
    scale,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    sg_param,
    HARD_RESET: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """w_t = scale * dL/dX_t (fp32 workspace) from dL/dS (g): X and the membrane recomputed, h_t parked in w."""
    bh = tl.program_id(0)
    bi, hi = bh // H, bh % H
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows < N)[:, None] & (cols < D)[None, :]
    qs = (qs0, qs1, qs2, qs3, qs4)
    kvs = (kvs0, kvs1, kvs2, kvs3, kvs4)
    v = tl.zeros([BLOCK_N, BLOCK_D], tl.float32) + v_init
    for t in range(T):
        x = _attention_input(q_ptr, kv_ptr, t, bi, hi, rows, cols, mask, D, qs, kvs, scale, BLOCK_D)
        h, _, v = step(v, x, decay, gain, bias, True, v_threshold, v_reset, False, HARD_RESET)
        tl.store(w_ptr + _offsets(t, bi, hi, rows, cols, ws0, ws1, ws2, ws3, ws4), h, mask=mask)
    # the walk back reads h_t that other threads of this program may have stored
    tl.debug_barrier()
    grad_v = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for i in range(T):
        t = T - 1 - i
        w_offs = _offsets(t, bi, hi, rows, cols, ws0, ws1, ws2, ws3, ws4)
        h = tl.load(w_ptr + w_offs, mask=mask, other=0.0)
        g = tl.load(g_ptr + _offsets(t, bi, hi, rows, cols, gs0, gs1, gs2, gs3, gs4), mask=mask, other=0.0)
        grad_h, grad_v = walk_step(
            g.to(tl.float32),
            grad_v,
            h,
            decay,
            mask,
            v_threshold,
            v_reset,
            sg_param,
            HARD_RESET,
            False,
            DETACH_RESET,
            SG_ID,
        )
        tl.store(w_ptr + w_offs, grad_h * gain * scale, mask=mask)


@triton.jit(do_not_specialize=["T"])
def gate_fwd_kernel(
    x_ptr,
    a_ptr,
    b_ptr,
    y_ptr,
    z_ptr,
    T,
    B,
    H,
    R,
    P,
    xs0,
    xs1,
    xs2,
    xs3,
    xs4,
    as0,
    as1,
    as2,
    as3,
    as4,
    bs0,
    bs1,
    bs2,
    bs3,
    bs4,
    ys0,
    ys1,
    ys2,
    ys3,
    ys4,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    HAS_B: tl.constexpr,
    HARD_RESET: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Y_t = X_t * LIF(Z)_t with Z_t = sum_r A_t (* B_t) per (b, head, p); Z stored dense fp32 [T, B, H, P]."""
    bh = tl.program_id(0)
    bi, hi = bh // H, bh % H
    cols = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    cmask = cols < P
    z_offs = bh.to(tl.int64) * P + cols
    v = tl.zeros([BLOCK_P], tl.float32) + v_init  # [BLOCK_P]
    for t in range(T):
        acc = tl.zeros([BLOCK_R, BLOCK_P], tl.float32)
        for r0 in range(0, R, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            mask = (rows < R)[:, None] & cmask[None, :]
            a = tl.load(a_ptr + _offsets(t, bi, hi, rows, cols, as0, as1, as2, as3, as4), mask=mask, other=0.0)
            a = a.to(tl.float32)
            if HAS_B:
                b = tl.load(b_ptr + _offsets(t, bi, hi, rows, cols, bs0, bs1, bs2, bs3, bs4), mask=mask, other=0.0)
                a = a * b.to(tl.float32)
            acc += a
        z = tl.sum(acc, axis=0)
        tl.store(z_ptr + tl.cast(t, tl.int64) * B * H * P + z_offs, z, mask=cmask)
        _, spike, v = step(v, z, decay, gain, bias, True, v_threshold, v_reset, False, HARD_RESET)
        gate = spike.to(tl.float32)[None, :]
        for r0 in range(0, R, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            mask = (rows < R)[:, None] & cmask[None, :]
            x = tl.load(x_ptr + _offsets(t, bi, hi, rows, cols, xs0, xs1, xs2, xs3, xs4), mask=mask, other=0.0)
            y_offs = _offsets(t, bi, hi, rows, cols, ys0, ys1, ys2, ys3, ys4)
            tl.store(y_ptr + y_offs, (x.to(tl.float32) * gate).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["T"])
def gate_bwd_kernel(
    g_ptr,
    x_ptr,
    a_ptr,
    b_ptr,
    z_ptr,
    dx_ptr,
    da_ptr,
    db_ptr,
    h_ptr,
    ds_ptr,
    T,
    B,
    H,
    R,
    P,
    gs0,
    gs1,
    gs2,
    gs3,
    gs4,
    xs0,
    xs1,
    xs2,
    xs3,
    xs4,
    as0,
    as1,
    as2,
    as3,
    as4,
    bs0,
    bs1,
    bs2,
    bs3,
    bs4,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init,
    sg_param,
    HAS_B: tl.constexpr,
    HARD_RESET: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """dX = dY * spikes and dS_t = sum_r dY_t X_t (t forward, the LIF rebuilt from Z), then the LIF's walk back
    to dZ and dA = dZ (* B), dB = dZ * A. dX, dA, dB have the strides of X, A, B; h and dS are dense fp32
    [T, B, H, P] workspaces."""
    bh = tl.program_id(0)
    bi, hi = bh // H, bh % H
    cols = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    cmask = cols < P
    z_offs = bh.to(tl.int64) * P + cols
    plane = B * H * P
    v = tl.zeros([BLOCK_P], tl.float32) + v_init
    for t in range(T):
        z = tl.load(z_ptr + tl.cast(t, tl.int64) * plane + z_offs, mask=cmask, other=0.0)
        h, spike, v = step(v, z, decay, gain, bias, True, v_threshold, v_reset, False, HARD_RESET)
        tl.store(h_ptr + tl.cast(t, tl.int64) * plane + z_offs, h, mask=cmask)
        gate = spike.to(tl.float32)[None, :]
        acc = tl.zeros([BLOCK_R, BLOCK_P], tl.float32)
        for r0 in range(0, R, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            mask = (rows < R)[:, None] & cmask[None, :]
            g = tl.load(g_ptr + _offsets(t, bi, hi, rows, cols, gs0, gs1, gs2, gs3, gs4), mask=mask, other=0.0)
            x_offs = _offsets(t, bi, hi, rows, cols, xs0, xs1, xs2, xs3, xs4)
            x = tl.load(x_ptr + x_offs, mask=mask, other=0.0)
            g = g.to(tl.float32)
            acc += g * x.to(tl.float32)
            tl.store(dx_ptr + x_offs, (g * gate).to(dx_ptr.dtype.element_ty), mask=mask)
        tl.store(ds_ptr + tl.cast(t, tl.int64) * plane + z_offs, tl.sum(acc, axis=0), mask=cmask)
    # the walk back reads h_t and dS_t that other threads of this program may have stored
    tl.debug_barrier()
    grad_v = tl.zeros([BLOCK_P], tl.float32)
    for i in range(T):
        t = T - 1 - i
        h = tl.load(h_ptr + tl.cast(t, tl.int64) * plane + z_offs, mask=cmask, other=0.0)
        ds = tl.load(ds_ptr + tl.cast(t, tl.int64) * plane + z_offs, mask=cmask, other=0.0)
        grad_h, grad_v = walk_step(
            ds, grad_v, h, decay, cmask, v_threshold, v_reset, sg_param, HARD_RESET, False, DETACH_RESET, SG_ID
        )
        dz = (grad_h * gain)[None, :]
        for r0 in range(0, R, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            mask = (rows < R)[:, None] & cmask[None, :]
            a_offs = _offsets(t, bi, hi, rows, cols, as0, as1, as2, as3, as4)
            if HAS_B:
                b_offs = _offsets(t, bi, hi, rows, cols, bs0, bs1, bs2, bs3, bs4)
                a = tl.load(a_ptr + a_offs, mask=mask, other=0.0).to(tl.float32)
                b = tl.load(b_ptr + b_offs, mask=mask, other=0.0).to(tl.float32)
                tl.store(da_ptr + a_offs, (dz * b).to(da_ptr.dtype.element_ty), mask=mask)
                tl.store(db_ptr + b_offs, (dz * a).to(db_ptr.dtype.element_ty), mask=mask)
            else:
                da = tl.zeros([BLOCK_R, BLOCK_P], tl.float32) + dz
                tl.store(da_ptr + a_offs, da.to(da_ptr.dtype.element_ty), mask=mask)
