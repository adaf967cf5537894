"""Triton kernels of STAA-LIF's whole time loop, one persistent program per sample (docs/staa.md "For a fused kernel").

The step attention's gates at step t need the pooled state of step t - 1 over ALL channels and pixels of a
sample, and its MLP mixes the sample's channels; nothing crosses samples. So one program per sample b can
run the whole loop, with a block barrier between its phases, and no kernel launch per step:

    per step t:  pooled = a mean_hw(H_{t-1}) + b mean_hw(Y_t)           (means: the last sweep's row sums)
                 z = W2 relu(W1 pooled);  (ga, gb) = gate(z)           (MLP in channel chunks; 1 if dropped)
                 sweep: U = ga a H_{t-1} + gb b Y_t, s = [U >= th], H_t = U (1 - s) + v_reset s, row sums of H_t

the ops of ``staa_step`` in the same order (``staa_step.py``), the MLP summed in chunks of channels.

The backward walks time in reverse with two sweeps a step (the gates' gradients need the first sweep's row
sums before dL/dH_{t-1} and dL/dY_t can be formed): sweep 1 forms dL/dU and the per-row sums; the MLP's
backward gives dL/dpooled; sweep 2 writes dL/dH_{t-1} (carried to the next step in a buffer) and dL/dY_t
with the pooling's share. Every per-(t, b) gradient term is written once to its own slot (no
read-modify-write: a value held by several threads of a program could be added twice) and summed by
torch in a fixed order: deterministic.

Only B programs run: on a GPU with more SMs than samples, the sweeps cannot reach the copy bandwidth. The
trade against the step kernels (which fill the GPU but launch several kernels a step) is in
bench/NOTES.md; ``staa_lif_fused(loop_kernel=...)`` selects.
"""

import triton
import triton.language as tl

from .neuron_step import fire, grad_charge

SIGMOID, SOFTMAX, SCALED_LOGITS = 0, 1, 2  # the gate forms of reference.staa.step_attention_gates


@triton.jit
def _sigmoid(z):
    return 1.0 / (1.0 + tl.exp(-z))


@triton.jit
def _gates(za, zb, alpha, GATE: tl.constexpr):
    if GATE == 0:
        return alpha * _sigmoid(za), alpha * _sigmoid(zb)
    elif GATE == 1:
        m = tl.maximum(za, zb)
        ea = tl.exp(za - m)
        eb = tl.exp(zb - m)
        return alpha * (ea / (ea + eb)), alpha * (eb / (ea + eb))
    else:
        return _sigmoid(alpha * za), _sigmoid(alpha * zb)


@triton.jit
def _gates_vjp(za, zb, dga, dgb, alpha, GATE: tl.constexpr):
    """(dL/dza, dL/dzb) from the gates' gradients, the forms of ``_gates``."""
    if GATE == 0:
        sa = _sigmoid(za)
        sb = _sigmoid(zb)
        return dga * alpha * (sa * (1.0 - sa)), dgb * alpha * (sb * (1.0 - sb))
    elif GATE == 1:
        m = tl.maximum(za, zb)
        ea = tl.exp(za - m)
        eb = tl.exp(zb - m)
        w0 = ea / (ea + eb)
        dz = alpha * (dga - dgb) * (w0 * (1.0 - w0))
        return dz, -dz
    else:
        ga = _sigmoid(alpha * za)
        gb = _sigmoid(alpha * zb)
        return dga * (ga * (1.0 - ga)) * alpha, dgb * (gb * (1.0 - gb)) * alpha


@triton.jit
def _chunk(k0, C, BLOCK_K: tl.constexpr):
    ks = k0 + tl.arange(0, BLOCK_K)
    return ks, ks < C


@triton.jit
def _hidden_units(HID, BLOCK_HID: tl.constexpr):
    hid = tl.arange(0, BLOCK_HID)
    return hid, hid < HID


@triton.jit
def _logits(w2_ptr, hidden, hid, hmask, ks, kmask, C, HID):
    """(za, zb) of the channels ks: rows ks and C + ks of W2 [2C, HID] times the hidden units."""
    wmask = kmask[:, None] & hmask[None, :]
    wa = tl.load(w2_ptr + ks[:, None] * HID + hid[None, :], mask=wmask, other=0.0)
    wb = tl.load(w2_ptr + (C + ks)[:, None] * HID + hid[None, :], mask=wmask, other=0.0)
    return tl.sum(wa * hidden[None, :], axis=1), tl.sum(wb * hidden[None, :], axis=1), wa, wb


@triton.jit
def _store_hidden(hid_ptr, hidden, hid, hmask, ks):
    """The hidden units, stored by the logits tile's row of channel 0 (so in the first chunk only): in the
    [channels, hidden units] tile each value has one owner thread, where the [hidden units] vector alone is
    held by every warp and its store needs a thread-id predicate live across the time loop, which ptxas
    spilled (bench/NOTES.md "The `staa_loop_fwd_kernel` spill, read")."""
    first = (ks == 0)[:, None] & hmask[None, :]
    offs = tl.broadcast_to(hid[None, :], first.shape)
    tl.store(hid_ptr + offs, tl.broadcast_to(hidden[None, :], first.shape), mask=first)


@triton.jit
def _dropped(drop_ptr, tb, HAS_DROP: tl.constexpr):
    """Whether TSRD drops the step attention at (t, b): the gates are then 1 (a plain sum)."""
    if HAS_DROP:
        return tl.load(drop_ptr + tb) != 0
    else:
        return tb < 0


@triton.jit
def _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0, C, BLOCK_R: tl.constexpr):
    """Rows r0.. of the sample (channels), their mask, and a, b, ga, gb of step t as [BLOCK_R, 1] columns."""
    rows = r0 + tl.arange(0, BLOCK_R)
    rmask = rows < C
    return (
        rows,
        rmask,
        _row(a_ptr, 0, rows, rmask),
        _row(b_ptr, 0, rows, rmask),
        _row(ga_ptr, tb * C, rows, rmask),
        _row(gb_ptr, tb * C, rows, rmask),
    )


@triton.jit
def _sweep_tile(sample_base, rows, rmask, s0, S, BLOCK_S: tl.constexpr):
    cols = s0 + tl.arange(0, BLOCK_S)
    offs = sample_base + rows.to(tl.int64)[:, None] * S + cols[None, :]
    return offs, rmask[:, None] & (cols < S)[None, :]


@triton.jit
def _row(ptr, base, rows, rmask):
    return tl.load(ptr + base + rows, mask=rmask, other=0.0)[:, None]


@triton.jit
def _fire_loads(h_ptr, y_ptr, rows, rmask, s0, S, t, BLOCK_S: tl.constexpr):
    """A forward sweep tile's offsets, mask and loads: H_{t-1} (zero at t = 0) and Y_t."""
    offs, mask = _sweep_tile(0, rows, rmask, s0, S, BLOCK_S)
    h = tl.load(h_ptr + offs, mask=mask & (t > 0), other=0.0)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    return offs, mask, h, y


@triton.jit
def _fire_tile(s_ptr, h_ptr, offs, mask, h, y, a, b, ga, gb, acc, v_threshold, v_reset):
    """A forward sweep tile: aggregate, fire, reset; spikes and H_t stored, H_t added to the row sums."""
    u = ga * (a * h) + gb * (b * y)
    spike = tl.where(fire(u, v_threshold, False), 1.0, 0.0)
    tl.store(s_ptr + offs, spike.to(s_ptr.dtype.element_ty), mask=mask)
    h_next = u * (1.0 - spike) + v_reset * spike
    tl.store(h_ptr + offs, h_next, mask=mask)
    return acc + tl.where(mask, h_next, 0.0)


@triton.jit
def _charge_loads(h_ptr, y_ptr, ds_ptr, g_ptr, rows, rmask, s0, S, t, T, BLOCK_S: tl.constexpr):
    """A sweep-1 tile's offsets, mask and loads: H_{t-1}, Y_t, dL/ds and dL/dH_t carried from step t + 1 (each
    pointer at the sample's step)."""
    offs, mask = _sweep_tile(0, rows, rmask, s0, S, BLOCK_S)
    h = tl.load(h_ptr + offs, mask=mask & (t > 0), other=0.0)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    grad_s = tl.load(ds_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    carried_grad = tl.load(g_ptr + offs, mask=mask & (t < T - 1), other=0.0)
    return offs, mask, h, y, grad_s, carried_grad


@triton.jit
def _charge_grad(
    gu_ptr, offs, mask, h, y, grad_s, carried_grad, d_sum, a, b, ga, gb,
    acc_ga, acc_gb, acc_a, acc_b, v_threshold, v_reset, sg_param, DETACH_RESET: tl.constexpr, SG_ID: tl.constexpr,
):  # fmt: skip
    """A sweep-1 tile's dL/dU from its loads (stored to ``gu_ptr``) and the four accumulators updated."""
    big_a = a * h
    big_b = b * y
    u = ga * big_a + gb * big_b
    grad_h_next = carried_grad + d_sum
    # the leaky family's chain: hard reset to v_reset, firing on U >= threshold
    grad_u = grad_charge(grad_s, grad_h_next, u, v_threshold, v_reset, sg_param, True, False, DETACH_RESET, SG_ID)
    grad_u = tl.where(mask, grad_u, 0.0)
    tl.store(gu_ptr + offs, grad_u, mask=mask)
    return acc_ga + grad_u * big_a, acc_gb + grad_u * big_b, acc_a + (grad_u * ga) * h, acc_b + (grad_u * gb) * y


@triton.jit
def _store_row_grads(row_ptr, da_ptr, db_ptr, bc, bi, C, tb, rows, rmask, acc_ga, acc_gb, acc_a, acc_b):
    """A row block's sums: dL/dga, dL/dgb (row_ptr slots 0, 1) and step t's shares of dL/da, dL/db."""
    tl.store(row_ptr + bi * C + rows, tl.sum(acc_ga, axis=1), mask=rmask)
    tl.store(row_ptr + bc + bi * C + rows, tl.sum(acc_gb, axis=1), mask=rmask)
    tl.store(da_ptr + tb * C + rows, tl.sum(acc_a, axis=1), mask=rmask)
    tl.store(db_ptr + tb * C + rows, tl.sum(acc_b, axis=1), mask=rmask)


@triton.jit(do_not_specialize=["T"])
def staa_loop_fwd_kernel(
    y_ptr,  # [T, B, C, S] fp32: the aggregation's input per step
    mean_y_ptr,  # [T, B, C] fp32: its means over S (HAS_SA)
    a_ptr,
    b_ptr,  # [C] fp32 coefficients
    w1_ptr,
    w2_ptr,  # [HID, C], [2C, HID] fp32 (HAS_SA)
    drop_ptr,  # [T, B] int32, 1 = dropped (HAS_DROP)
    s_ptr,  # out [T, B, C, S] spikes
    h_ptr,  # out [n_slots, B, C, S] fp32: H_t in slot t % n_slots (n_slots = T keeps the sequence)
    ga_ptr,
    gb_ptr,  # out [T, B, C] fp32 gates
    hid_ptr,  # out [T, B, HID] fp32 hidden units after the ReLU (HAS_SA)
    mean_h_ptr,  # out [T, B, C] fp32: mean_hw(H_{t-1}), the pooling's input
    hsum_ptr,  # scratch [B, C] fp32: row sums of the last state
    T,
    B,
    C,
    S,
    HID,
    n_slots,
    alpha,
    v_threshold,
    v_reset,
    HAS_SA: tl.constexpr,
    GATE: tl.constexpr,
    HAS_DROP: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_HID: tl.constexpr,
):
    bi = tl.program_id(0)
    sample = tl.cast(C, tl.int64) * S
    state_slot = tl.cast(B, tl.int64) * sample
    hid, hmask = _hidden_units(HID, BLOCK_HID)
    for t in range(T):
        tb = t * B + bi
        # --- the gates of step t, from the pooled state of step t - 1 (zero state at t = 0)
        hidden = tl.zeros([BLOCK_HID], tl.float32)
        for k0 in range(0, C, BLOCK_K):
            ks, kmask = _chunk(k0, C, BLOCK_K)
            mean_h = tl.load(hsum_ptr + bi * C + ks, mask=kmask & (t > 0), other=0.0) / S
            tl.store(mean_h_ptr + tb * C + ks, mean_h, mask=kmask)
            if HAS_SA:
                mean_y = tl.load(mean_y_ptr + tb * C + ks, mask=kmask, other=0.0)
                pooled = (
                    tl.load(a_ptr + ks, mask=kmask, other=0.0) * mean_h
                    + tl.load(b_ptr + ks, mask=kmask, other=0.0) * mean_y
                )
                w1 = tl.load(w1_ptr + hid[:, None] * C + ks[None, :], mask=hmask[:, None] & kmask[None, :], other=0.0)
                hidden += tl.sum(w1 * pooled[None, :], axis=1)
        hidden = tl.maximum(hidden, 0.0)
        dropped = _dropped(drop_ptr, tb, HAS_DROP)
        for k0 in range(0, C, BLOCK_K):
            ks, kmask = _chunk(k0, C, BLOCK_K)
            if HAS_SA:
                za, zb, _wa, _wb = _logits(w2_ptr, hidden, hid, hmask, ks, kmask, C, HID)
                _store_hidden(hid_ptr + tb * HID, hidden, hid, hmask, ks)
                gate_a, gate_b = _gates(za, zb, alpha, GATE)
                gate_a = tl.where(dropped, 1.0, gate_a)
                gate_b = tl.where(dropped, 1.0, gate_b)
            else:
                gate_a = tl.zeros([BLOCK_K], tl.float32) + 1.0
                gate_b = gate_a
            tl.store(ga_ptr + tb * C + ks, gate_a, mask=kmask)
            tl.store(gb_ptr + tb * C + ks, gate_b, mask=kmask)
        tl.debug_barrier()  # the gates and the pooling's reads are done before the sweep writes
        # --- the sweep: aggregate, fire, reset; row sums of H_t for the next step's pooling
        h_in = ((t + n_slots - 1) % n_slots) * state_slot + bi * sample
        h_out = (t % n_slots) * state_slot + bi * sample
        y_base = tb.to(tl.int64) * sample
        h_prev, y_step, s_step, h_next = h_ptr + h_in, y_ptr + y_base, s_ptr + y_base, h_ptr + h_out
        # four row blocks a trip, all their loads before any store: a program holds an SM alone, so it must keep
        # the SM's bytes in flight (bench/NOTES.md "The persistent STAA backward: two row blocks a trip")
        for r0 in range(0, C, 4 * BLOCK_R):
            rows0, rmask0, a0, b0, ga0, gb0 = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0, C, BLOCK_R)
            rows1, rmask1, a1, b1, ga1, gb1 = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0 + BLOCK_R, C, BLOCK_R)
            r2 = r0 + 2 * BLOCK_R
            rows2, rmask2, a2, b2, ga2, gb2 = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r2, C, BLOCK_R)
            r3 = r0 + 3 * BLOCK_R
            rows3, rmask3, a3, b3, ga3, gb3 = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r3, C, BLOCK_R)
            acc0 = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
            acc1, acc2, acc3 = acc0, acc0, acc0
            for s0 in range(0, S, BLOCK_S):
                offs0, mask0, h0, y0 = _fire_loads(h_prev, y_step, rows0, rmask0, s0, S, t, BLOCK_S)
                offs1, mask1, h1, y1 = _fire_loads(h_prev, y_step, rows1, rmask1, s0, S, t, BLOCK_S)
                offs2, mask2, h2, y2 = _fire_loads(h_prev, y_step, rows2, rmask2, s0, S, t, BLOCK_S)
                offs3, mask3, h3, y3 = _fire_loads(h_prev, y_step, rows3, rmask3, s0, S, t, BLOCK_S)
                acc0 = _fire_tile(s_step, h_next, offs0, mask0, h0, y0, a0, b0, ga0, gb0, acc0, v_threshold, v_reset)
                acc1 = _fire_tile(s_step, h_next, offs1, mask1, h1, y1, a1, b1, ga1, gb1, acc1, v_threshold, v_reset)
                acc2 = _fire_tile(s_step, h_next, offs2, mask2, h2, y2, a2, b2, ga2, gb2, acc2, v_threshold, v_reset)
                acc3 = _fire_tile(s_step, h_next, offs3, mask3, h3, y3, a3, b3, ga3, gb3, acc3, v_threshold, v_reset)
            tl.store(hsum_ptr + bi * C + rows0, tl.sum(acc0, axis=1), mask=rmask0)
            tl.store(hsum_ptr + bi * C + rows1, tl.sum(acc1, axis=1), mask=rmask1)
            tl.store(hsum_ptr + bi * C + rows2, tl.sum(acc2, axis=1), mask=rmask2)
            tl.store(hsum_ptr + bi * C + rows3, tl.sum(acc3, axis=1), mask=rmask3)
        tl.debug_barrier()  # H_t and its row sums are complete before step t + 1 reads them


@triton.jit(do_not_specialize=["T"])
def staa_loop_bwd_kernel(
    ds_ptr,  # [T, B, C, S] dL/ds
    y_ptr,
    mean_y_ptr,
    a_ptr,
    b_ptr,
    w1_ptr,
    w2_ptr,
    drop_ptr,
    h_ptr,  # [T, B, C, S] fp32: H_t of every step (the forward's slots with n_slots = T)
    ga_ptr,
    gb_ptr,
    hid_ptr,
    mean_h_ptr,  # the forward's saved [T, B, *] values
    dy_ptr,  # out [T, B, C, S] fp32: dL/dY_t, the pooling's share included
    g_ptr,
    gu_ptr,  # scratch [B, C, S] fp32: dL/dH_t carried back, dL/dU of the step
    row_ptr,  # scratch [4, B, C] fp32 (zeroed): dL/dga, dL/dgb; dL/d(row sum of H_{t-1}); dL/dmean_y / S
    da_ptr,
    db_ptr,  # out [2T, B, C] fp32 (zeroed): (t, b)'s shares of dL/da, dL/db, the pooled path's at T + t
    dw1_ptr,  # out [T, B, HID, C] fp32 (HAS_SA)
    dw2_ptr,  # out [T, B, 2C, HID] fp32 (HAS_SA)
    T,
    B,
    C,
    S,
    HID,
    alpha,
    v_threshold,
    v_reset,
    sg_param,
    HAS_SA: tl.constexpr,
    GATE: tl.constexpr,
    HAS_DROP: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_HID: tl.constexpr,
):
    bi = tl.program_id(0)
    sample = tl.cast(C, tl.int64) * S
    state_slot = tl.cast(B, tl.int64) * sample
    bc = tl.cast(B, tl.int64) * C
    hid, hmask = _hidden_units(HID, BLOCK_HID)
    carried = bi * sample  # this sample's slot in the scratch buffers
    for j in range(T):
        t = T - 1 - j
        tb = t * B + bi
        y_base = tb.to(tl.int64) * sample
        h_in = (t - 1) * state_slot + bi * sample
        h_prev, y_step, ds_step, g_next = h_ptr + h_in, y_ptr + y_base, ds_ptr + y_base, g_ptr + carried
        # --- sweep 1: dL/dU (the neuron's own chain plus the state carried from step t + 1), per-row sums. Two
        # row blocks a trip, both blocks' loads before either's store: twice the bytes in flight of a program,
        # which holds an SM alone (bench/NOTES.md "The persistent STAA backward: two row blocks a trip")
        for r0 in range(0, C, 2 * BLOCK_R):
            rows0, rmask0, a0, b0, ga0, gb0 = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0, C, BLOCK_R)
            rows1, rmask1, a1, b1, ga1, gb1 = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0 + BLOCK_R, C, BLOCK_R)
            d_sum0 = _row(row_ptr + 2 * bc, bi * C, rows0, rmask0 & (t < T - 1))
            d_sum1 = _row(row_ptr + 2 * bc, bi * C, rows1, rmask1 & (t < T - 1))
            zero = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
            acc_ga0, acc_gb0, acc_a0, acc_b0 = zero, zero, zero, zero
            acc_ga1, acc_gb1, acc_a1, acc_b1 = zero, zero, zero, zero
            for s0 in range(0, S, BLOCK_S):
                offs0, mask0, h0, y0, grad_s0, g0 = _charge_loads(
                    h_prev, y_step, ds_step, g_next, rows0, rmask0, s0, S, t, T, BLOCK_S
                )
                offs1, mask1, h1, y1, grad_s1, g1 = _charge_loads(
                    h_prev, y_step, ds_step, g_next, rows1, rmask1, s0, S, t, T, BLOCK_S
                )
                acc_ga0, acc_gb0, acc_a0, acc_b0 = _charge_grad(
                    gu_ptr + carried, offs0, mask0, h0, y0, grad_s0, g0, d_sum0, a0, b0, ga0, gb0,
                    acc_ga0, acc_gb0, acc_a0, acc_b0, v_threshold, v_reset, sg_param, DETACH_RESET, SG_ID,
                )  # fmt: skip
                acc_ga1, acc_gb1, acc_a1, acc_b1 = _charge_grad(
                    gu_ptr + carried, offs1, mask1, h1, y1, grad_s1, g1, d_sum1, a1, b1, ga1, gb1,
                    acc_ga1, acc_gb1, acc_a1, acc_b1, v_threshold, v_reset, sg_param, DETACH_RESET, SG_ID,
                )  # fmt: skip
            _store_row_grads(row_ptr, da_ptr, db_ptr, bc, bi, C, tb, rows0, rmask0, acc_ga0, acc_gb0, acc_a0, acc_b0)
            _store_row_grads(row_ptr, da_ptr, db_ptr, bc, bi, C, tb, rows1, rmask1, acc_ga1, acc_gb1, acc_a1, acc_b1)
        tl.debug_barrier()
        # --- the MLP's backward: dL/dpooled, and from it the pooling's gradients
        dropped = _dropped(drop_ptr, tb, HAS_DROP)
        if HAS_SA:
            hidden = tl.load(hid_ptr + tb * HID + hid, mask=hmask, other=0.0)
            d_hidden = tl.zeros([BLOCK_HID], tl.float32)
            for k0 in range(0, C, BLOCK_K):
                ks, kmask = _chunk(k0, C, BLOCK_K)
                za, zb, wa, wb = _logits(w2_ptr, hidden, hid, hmask, ks, kmask, C, HID)
                dga = tl.load(row_ptr + bi * C + ks, mask=kmask, other=0.0)
                dgb = tl.load(row_ptr + bc + bi * C + ks, mask=kmask, other=0.0)
                dza, dzb = _gates_vjp(za, zb, dga, dgb, alpha, GATE)
                dza = tl.where(dropped | ~kmask, 0.0, dza)
                dzb = tl.where(dropped | ~kmask, 0.0, dzb)
                wmask = kmask[:, None] & hmask[None, :]
                dw2 = dw2_ptr + tb.to(tl.int64) * 2 * C * HID
                tl.store(dw2 + ks[:, None] * HID + hid[None, :], dza[:, None] * hidden[None, :], mask=wmask)
                tl.store(dw2 + (C + ks)[:, None] * HID + hid[None, :], dzb[:, None] * hidden[None, :], mask=wmask)
                d_hidden += tl.sum(wa * dza[:, None], axis=0) + tl.sum(wb * dzb[:, None], axis=0)
            d_hidden = tl.where(hidden > 0.0, d_hidden, 0.0)
            for k0 in range(0, C, BLOCK_K):
                ks, kmask = _chunk(k0, C, BLOCK_K)
                a_k = tl.load(a_ptr + ks, mask=kmask, other=0.0)
                b_k = tl.load(b_ptr + ks, mask=kmask, other=0.0)
                mean_h = tl.load(mean_h_ptr + tb * C + ks, mask=kmask, other=0.0)
                mean_y = tl.load(mean_y_ptr + tb * C + ks, mask=kmask, other=0.0)
                pooled = a_k * mean_h + b_k * mean_y
                w1_mask = hmask[:, None] & kmask[None, :]
                w1 = tl.load(w1_ptr + hid[:, None] * C + ks[None, :], mask=w1_mask, other=0.0)
                dw1 = dw1_ptr + tb.to(tl.int64) * HID * C
                tl.store(dw1 + hid[:, None] * C + ks[None, :], d_hidden[:, None] * pooled[None, :], mask=w1_mask)
                d_pooled = tl.sum(w1 * d_hidden[:, None], axis=0)
                # dL/d(row sum of H_{t-1}) for sweep 1 of step t - 1, dL/dmean_y / S for sweep 2 below; the
                # pooled path's shares of dL/da, dL/db in slot T + t (sweep 1 wrote slot t): each written once
                tl.store(row_ptr + 2 * bc + bi * C + ks, (a_k * d_pooled) / S, mask=kmask)
                tl.store(row_ptr + 3 * bc + bi * C + ks, (b_k * d_pooled) / S, mask=kmask)
                tl.store(da_ptr + (T + t) * bc + bi * C + ks, d_pooled * mean_h, mask=kmask)
                tl.store(db_ptr + (T + t) * bc + bi * C + ks, d_pooled * mean_y, mask=kmask)
        tl.debug_barrier()
        # --- sweep 2: dL/dH_{t-1} (carried) and dL/dY_t with the pooling's share. Elementwise, so a tile of four
        # row blocks gives the same bits with four times the loads in flight
        for r0 in range(0, C, 4 * BLOCK_R):
            rows, rmask, a, b, ga, gb = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0, C, 4 * BLOCK_R)
            d_mean_y = _row(row_ptr + 3 * bc, bi * C, rows, rmask)
            for s0 in range(0, S, BLOCK_S):
                offs, mask = _sweep_tile(0, rows, rmask, s0, S, BLOCK_S)
                grad_u = tl.load(gu_ptr + carried + offs, mask=mask, other=0.0)
                tl.store(g_ptr + carried + offs, (grad_u * ga) * a, mask=mask)
                tl.store(dy_ptr + y_base + offs, (grad_u * gb) * b + d_mean_y, mask=mask)
        tl.debug_barrier()
