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
        if HAS_SA:
            tl.store(hid_ptr + tb * HID + hid, hidden, mask=hmask)
        dropped = _dropped(drop_ptr, tb, HAS_DROP)
        for k0 in range(0, C, BLOCK_K):
            ks, kmask = _chunk(k0, C, BLOCK_K)
            if HAS_SA:
                za, zb, _wa, _wb = _logits(w2_ptr, hidden, hid, hmask, ks, kmask, C, HID)
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
        for r0 in range(0, C, BLOCK_R):
            rows, rmask, a, b, ga, gb = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0, C, BLOCK_R)
            acc = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
            for s0 in range(0, S, BLOCK_S):
                offs, mask = _sweep_tile(0, rows, rmask, s0, S, BLOCK_S)
                h = tl.load(h_ptr + h_in + offs, mask=mask & (t > 0), other=0.0)
                y = tl.load(y_ptr + y_base + offs, mask=mask, other=0.0)
                u = ga * (a * h) + gb * (b * y)
                spike = tl.where(fire(u, v_threshold, False), 1.0, 0.0)
                tl.store(s_ptr + y_base + offs, spike.to(s_ptr.dtype.element_ty), mask=mask)
                h_next = u * (1.0 - spike) + v_reset * spike
                tl.store(h_ptr + h_out + offs, h_next, mask=mask)
                acc += tl.where(mask, h_next, 0.0)
            tl.store(hsum_ptr + bi * C + rows, tl.sum(acc, axis=1), mask=rmask)
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
        # --- sweep 1: dL/dU (the neuron's own chain plus the state carried from step t + 1), per-row sums
        for r0 in range(0, C, BLOCK_R):
            rows, rmask, a, b, ga, gb = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0, C, BLOCK_R)
            d_sum = _row(row_ptr + 2 * bc, bi * C, rows, rmask & (t < T - 1))
            acc_ga = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
            acc_gb = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
            acc_a = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
            acc_b = tl.zeros([BLOCK_R, BLOCK_S], tl.float32)
            for s0 in range(0, S, BLOCK_S):
                offs, mask = _sweep_tile(0, rows, rmask, s0, S, BLOCK_S)
                h = tl.load(h_ptr + h_in + offs, mask=mask & (t > 0), other=0.0)
                y = tl.load(y_ptr + y_base + offs, mask=mask, other=0.0)
                big_a = a * h
                big_b = b * y
                u = ga * big_a + gb * big_b
                grad_s = tl.load(ds_ptr + y_base + offs, mask=mask, other=0.0).to(tl.float32)
                grad_h_next = tl.load(g_ptr + carried + offs, mask=mask & (t < T - 1), other=0.0) + d_sum
                # the leaky family's chain: hard reset to v_reset, firing on U >= threshold
                grad_u = grad_charge(
                    grad_s, grad_h_next, u, v_threshold, v_reset, sg_param, True, False, DETACH_RESET, SG_ID
                )
                grad_u = tl.where(mask, grad_u, 0.0)
                tl.store(gu_ptr + carried + offs, grad_u, mask=mask)
                acc_ga += grad_u * big_a
                acc_gb += grad_u * big_b
                acc_a += (grad_u * ga) * h
                acc_b += (grad_u * gb) * y
            tl.store(row_ptr + bi * C + rows, tl.sum(acc_ga, axis=1), mask=rmask)
            tl.store(row_ptr + bc + bi * C + rows, tl.sum(acc_gb, axis=1), mask=rmask)
            tl.store(da_ptr + tb * C + rows, tl.sum(acc_a, axis=1), mask=rmask)
            tl.store(db_ptr + tb * C + rows, tl.sum(acc_b, axis=1), mask=rmask)
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
        # --- sweep 2: dL/dH_{t-1} (carried) and dL/dY_t with the pooling's share
        for r0 in range(0, C, BLOCK_R):
            rows, rmask, a, b, ga, gb = _row_factors(a_ptr, b_ptr, ga_ptr, gb_ptr, tb, r0, C, BLOCK_R)
            d_mean_y = _row(row_ptr + 3 * bc, bi * C, rows, rmask)
            for s0 in range(0, S, BLOCK_S):
                offs, mask = _sweep_tile(0, rows, rmask, s0, S, BLOCK_S)
                grad_u = tl.load(gu_ptr + carried + offs, mask=mask, other=0.0)
                tl.store(g_ptr + carried + offs, (grad_u * ga) * a, mask=mask)
                tl.store(dy_ptr + y_base + offs, (grad_u * gb) * b + d_mean_y, mask=mask)
        tl.debug_barrier()
