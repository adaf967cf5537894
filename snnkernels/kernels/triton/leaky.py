"""Triton kernels of the leaky neuron family (math in ``snnkernels.neuron_models``).

Layout: ``x`` is [T, N] contiguous (N = B * C * S neurons per step); a neuron's channel is
``(n // S) % C``. One program owns BLOCK neurons and walks the whole time axis with the state in
registers. Time is processed in chunks of CHUNK steps, unrolled, with all of a chunk's loads placed before
its first store (Triton passes no ``noalias``: a load after a store would wait for it), so they are issued
together; T itself stays a run-time loop bound (no recompilation per T).

Training schedule (recompute): the forward writes spikes and, every CHUNK steps, the membrane state
v (fp32 "checkpoint"); the backward re-reads x, rebuilds the chunk's h_t in registers from its
checkpoint, then walks the chunk backwards. Bytes per neuron-step (fp32 x/grad): forward 8 + 4/CHUNK,
backward 12 + 4/CHUNK: 20 + 8/CHUNK in all, against 24 for saving h (SpikingJelly).

Exactness: launch with ``enable_fp_fusion=False`` so the charge ``a*v + b*x + c`` is rounded op by op,
exactly as the eager reference (and the backward's recompute) does it; a fused multiply-add would
move h by one ulp and can flip a spike that sits at the threshold.

Spike counts (firing statistics): ``leaky_fwd_counted_kernel`` runs the same body with ``COUNT`` set and
also writes, per step, partial spike counts of each program's neurons ([T, n_programs * GROUPS] int32; the
host sums them), reduced in registers once per chunk. ``leaky_fwd_kernel`` passes ``COUNT=False``, so its
instructions are those of the body alone (checked against the previous kernel's PTX).

Packed spikes: ``leaky_fwd_packed_kernel`` runs the body with ``PACK`` set and also writes the spikes at 1 bit each
(docs/spike_pack.md "Packed by the neuron"): N % 8 == 0, so each program's BLOCK neurons of a step are BLOCK / 8
whole bytes of the flat layout; the chunk's spike bits (as ``COUNT`` keeps them) become bytes once per chunk.

Membrane sequence: with ``STORE_V_SEQ`` the forward also stores each step's post-reset state (fp32 [T, N]); with
``HAS_GRAD_V_SEQ`` the backward adds dL/dv_seq[t] to the carried dL/dv_t before step t's walk. Both are
constexprs, so a launch without them compiles to the kernel without those loads and stores
(python_tests/kernels/test_leaky_kernel_code.py counts them).
"""

import triton
import triton.language as tl

from .neuron_step import recompute_chunk, state_after, step, store_checkpoint, walk_step


@triton.jit
def _coefficient(ptr, value, ch, mask, IS_TENSOR: tl.constexpr):
    """A per-channel coefficient gathered for each neuron, or the scalar argument."""
    if IS_TENSOR:
        return tl.load(ptr + ch, mask=mask, other=0.0).to(tl.float32)
    else:
        return value


@triton.jit
def _neuron_block(
    N,
    S,
    C,
    decay_ptr,
    gain_ptr,
    bias_ptr,
    decay,
    gain,
    bias,
    v_init_ptr,
    v_init_value,
    DECAY_T: tl.constexpr,
    GAIN_T: tl.constexpr,
    BIAS_T: tl.constexpr,
    HAS_V_INIT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """This program's neurons: offsets [BLOCK] (int64), mask, row stride, coefficients and initial state."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    ch = (offs // S) % C
    n_row = tl.cast(N, tl.int64)  # row stride in int64: T * N can pass 2**31
    a = _coefficient(decay_ptr, decay, ch, mask, DECAY_T)
    b = _coefficient(gain_ptr, gain, ch, mask, GAIN_T)
    c = _coefficient(bias_ptr, bias, ch, mask, BIAS_T)
    if HAS_V_INIT:
        v_init = tl.load(v_init_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v_init = tl.zeros([BLOCK], dtype=tl.float32) + v_init_value
    return offs, mask, n_row, a, b, c, v_init


@triton.jit
def _input_of_step(t, T, args, FLAGS: tl.constexpr):
    """Step t of the backward's recompute: ((x[t], dL/ds[t], dL/dv_seq[t] or 0), x[t]) of this program's neurons,
    fp32, zero past T. The walk back keeps the first (x only where NEED_GRAD_GAIN), the neuron charges from x."""
    x_ptr, grad_spikes_ptr, grad_v_seq_ptr, n_row, offs, mask = args
    HAS_GRAD_V_SEQ: tl.constexpr = FLAGS[0]
    valid = t < T
    row = t * n_row
    x = tl.load(x_ptr + row + offs, mask=mask & valid, other=0.0).to(tl.float32)
    grad_s = tl.load(grad_spikes_ptr + row + offs, mask=mask & valid, other=0.0).to(tl.float32)
    if HAS_GRAD_V_SEQ:
        grad_v_t = tl.load(grad_v_seq_ptr + row + offs, mask=mask & valid, other=0.0)
    else:
        grad_v_t = 0.0
    return (x, grad_s, grad_v_t), x


@triton.jit
def _store_chunk_counts(
    counts_ptr, fired, mask, t0, T, CHUNK: tl.constexpr, STEPS: tl.constexpr, GROUPS: tl.constexpr, BLOCK: tl.constexpr
):
    """Spikes per step of this program's neurons over one chunk, as GROUPS partial counts per step.

    ``fired`` holds each neuron's spikes of the chunk as bits (bit k: step t0 + k). Any partition of the
    block into GROUPS parts will do, since the host sums every partial, so the reshape may reorder freely
    and moves no data; shaped [lane-sized rows, GROUPS, 32], each part lies in one warp (GROUPS =
    num_warps) and reduces with warp shuffles alone. All CHUNK steps reduce together, once per chunk."""
    # lanes past N charge from x = 0 and may "fire" (bias >= threshold): mask them out
    parts = tl.reshape(tl.where(mask, fired, 0), [BLOCK // (32 * GROUPS), GROUPS, 32], can_reorder=True)
    steps = tl.arange(0, STEPS)  # STEPS: CHUNK rounded up to a power of two (arange's rule)
    bits = (parts[None, :, :, :] >> steps[:, None, None, None]) & 1
    per_step = tl.sum(tl.sum(bits, axis=3), axis=1)  # [STEPS, GROUPS]
    t = t0 + steps
    col = tl.program_id(0) * GROUPS + tl.arange(0, GROUPS)
    width = tl.num_programs(0) * GROUPS
    tl.store(counts_ptr + t[:, None] * width + col[None, :], per_step, mask=((steps < CHUNK) & (t < T))[:, None])


@triton.jit
def _store_chunk_bytes(packed_ptr, fired, N, t0, T, CHUNK: tl.constexpr, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    """The packed spikes of this program's neurons over one chunk: [CHUNK, BLOCK / 8] bytes, step t0 + k's at
    row t0 + k of the [T, N / 8] bytes (N % 8 == 0: each program's bytes are whole, none shared).

    ``fired`` holds each neuron's spikes of the chunk as bits (bit k: step t0 + k). The bytes of all CHUNK steps
    are formed and stored together, so the store's layout conversion (the bytes of a step span two lanes) costs
    one shared-memory round trip a chunk instead of one a step (bench/NOTES.md "The neuron writes the packed
    spikes as it fires"). Lanes past N may have "fired" (bias >= threshold): their bytes lie past N / 8."""
    steps = tl.arange(0, STEPS)  # STEPS: CHUNK rounded up to a power of two (arange's rule)
    per_step = (tl.reshape(fired, [BLOCK // 8, 8])[None, :, :] >> steps[:, None, None]) & 1
    packed = tl.sum(per_step << tl.arange(0, 8)[None, None, :], axis=2).to(tl.uint8)  # [STEPS, BLOCK / 8]
    byte_offs = tl.program_id(0).to(tl.int64) * (BLOCK // 8) + tl.arange(0, BLOCK // 8)
    t = t0 + steps
    row = t.to(tl.int64) * (N // 8)
    mask = ((steps < CHUNK) & (t < T))[:, None] & (byte_offs < N // 8)[None, :]
    tl.store(packed_ptr + row[:, None] + byte_offs[None, :], packed, mask=mask)


@triton.jit
def _leaky_fwd(
    x_ptr,
    v_init_ptr,
    decay_ptr,
    gain_ptr,
    bias_ptr,
    spikes_ptr,
    v_final_ptr,
    ckpt_ptr,
    v_seq_ptr,
    counts_ptr,
    packed_ptr,
    T,
    N,
    S,
    C,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    HAS_V_INIT: tl.constexpr,
    DECAY_T: tl.constexpr,
    GAIN_T: tl.constexpr,
    BIAS_T: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    TRAINING: tl.constexpr,
    STORE_FINAL: tl.constexpr,
    STORE_V_SEQ: tl.constexpr,
    COUNT: tl.constexpr,
    PACK: tl.constexpr,
    STEPS: tl.constexpr,
    GROUPS: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """The forward's body, shared by the three entry points (arguments as in ``leaky_fwd_counted_kernel`` and
    ``leaky_fwd_packed_kernel``)."""
    offs, mask, n_row, a, b, c, v = _neuron_block(
        N,
        S,
        C,
        decay_ptr,
        gain_ptr,
        bias_ptr,
        decay,
        gain,
        bias,
        v_init_ptr,
        v_init_value,
        DECAY_T,
        GAIN_T,
        BIAS_T,
        HAS_V_INIT,
        BLOCK,
    )

    # Not ``forward_chunks``: this loop also carries each chunk's spike bits (COUNT), counted once per chunk.
    n_chunks = tl.cdiv(T, CHUNK)
    for ci in range(n_chunks):
        t0 = ci * CHUNK
        if TRAINING:
            # chunk 0 restarts from v_init, so its state is not stored
            store_checkpoint(ckpt_ptr, ci, n_row, offs, mask, v)
        fired = tl.zeros([BLOCK], dtype=tl.int32)  # bit k: the neuron fired at step t0 + k (if COUNT or PACK)
        # the chunk's loads before its first store (``neuron_step.forward_chunks``' why)
        xs = ()
        for k in tl.static_range(CHUNK):
            xs = xs + (tl.load(x_ptr + (t0 + k) * n_row + offs, mask=mask & (t0 + k < T), other=0.0),)
        for k in tl.static_range(CHUNK):
            valid = t0 + k < T
            row = (t0 + k) * n_row
            x = xs[k].to(tl.float32)
            _h, spike, v = step(v, x, a, b, c, valid, v_threshold, v_reset, STRICT, HARD_RESET)
            # bool -> fp32 -> storage type (Triton 3.6's interpreter miscasts bool straight to bf16)
            s_out = tl.where(spike, 1.0, 0.0).to(spikes_ptr.dtype.element_ty)
            tl.store(spikes_ptr + row + offs, s_out, mask=mask & valid)
            if STORE_V_SEQ:
                tl.store(v_seq_ptr + row + offs, v, mask=mask & valid)
            if COUNT or PACK:
                fired = fired | (spike.to(tl.int32) << k)
        if COUNT:
            _store_chunk_counts(counts_ptr, fired, mask, t0, T, CHUNK, STEPS, GROUPS, BLOCK)
        if PACK:
            _store_chunk_bytes(packed_ptr, fired, N, t0, T, CHUNK, STEPS, BLOCK)
    if STORE_FINAL:
        tl.store(v_final_ptr + offs, v, mask=mask)


@triton.jit(do_not_specialize=["T"])
def leaky_fwd_kernel(
    x_ptr,  # [T, N] input, fp32/fp16/bf16
    v_init_ptr,  # [N] initial state (any float dtype) if HAS_V_INIT
    decay_ptr,  # [C] fp32 if DECAY_T
    gain_ptr,  # [C] fp32 if GAIN_T
    bias_ptr,  # [C] fp32 if BIAS_T
    spikes_ptr,  # [T, N] out, x's dtype
    v_final_ptr,  # [N] out, fp32, if STORE_FINAL
    ckpt_ptr,  # [cdiv(T, CHUNK) - 1, N] out, fp32, if TRAINING: v entering chunks 1, 2, ...
    v_seq_ptr,  # [T, N] out, fp32, if STORE_V_SEQ: the post-reset state of every step
    T,
    N,
    S,
    C,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    HAS_V_INIT: tl.constexpr,
    DECAY_T: tl.constexpr,
    GAIN_T: tl.constexpr,
    BIAS_T: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    TRAINING: tl.constexpr,
    STORE_FINAL: tl.constexpr,
    STORE_V_SEQ: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # COUNT=PACK=False: the counting and packing code is never emitted, so this compiles exactly as the body alone
    _leaky_fwd(
        x_ptr,
        v_init_ptr,
        decay_ptr,
        gain_ptr,
        bias_ptr,
        spikes_ptr,
        v_final_ptr,
        ckpt_ptr,
        v_seq_ptr,
        ckpt_ptr,
        ckpt_ptr,
        T,
        N,
        S,
        C,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
        v_init_value,
        HAS_V_INIT,
        DECAY_T,
        GAIN_T,
        BIAS_T,
        HARD_RESET,
        STRICT,
        TRAINING,
        STORE_FINAL,
        STORE_V_SEQ,
        False,
        False,
        1,
        1,
        CHUNK,
        BLOCK,
    )


@triton.jit(do_not_specialize=["T"])
def leaky_fwd_counted_kernel(
    x_ptr,
    v_init_ptr,
    decay_ptr,
    gain_ptr,
    bias_ptr,
    spikes_ptr,
    v_final_ptr,
    ckpt_ptr,
    v_seq_ptr,  # as the plain one
    counts_ptr,  # [T, n_programs * GROUPS] out, int32: spikes at each step, GROUPS partial counts per program
    T,
    N,
    S,
    C,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    HAS_V_INIT: tl.constexpr,
    DECAY_T: tl.constexpr,
    GAIN_T: tl.constexpr,
    BIAS_T: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    TRAINING: tl.constexpr,
    STORE_FINAL: tl.constexpr,
    STORE_V_SEQ: tl.constexpr,
    STEPS: tl.constexpr,  # CHUNK rounded up to a power of two; CHUNK <= 32 (a chunk's spikes are int32 bits)
    GROUPS: tl.constexpr,  # partial counts per program and step: num_warps, so that each lies in one warp
    CHUNK: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``leaky_fwd_kernel`` that also counts spikes: the chunk's spikes are kept as bits per neuron and
    summed once per chunk into this program's own slots of ``counts_ptr`` (no atomics: the host's integer
    sum over the slots is exact and deterministic). BLOCK must be a multiple of 32 * GROUPS."""
    _leaky_fwd(
        x_ptr,
        v_init_ptr,
        decay_ptr,
        gain_ptr,
        bias_ptr,
        spikes_ptr,
        v_final_ptr,
        ckpt_ptr,
        v_seq_ptr,
        counts_ptr,
        counts_ptr,
        T,
        N,
        S,
        C,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
        v_init_value,
        HAS_V_INIT,
        DECAY_T,
        GAIN_T,
        BIAS_T,
        HARD_RESET,
        STRICT,
        TRAINING,
        STORE_FINAL,
        STORE_V_SEQ,
        True,
        False,
        STEPS,
        GROUPS,
        CHUNK,
        BLOCK,
    )


@triton.jit(do_not_specialize=["T"])
def leaky_fwd_packed_kernel(
    x_ptr,
    v_init_ptr,
    decay_ptr,
    gain_ptr,
    bias_ptr,
    spikes_ptr,
    v_final_ptr,
    ckpt_ptr,
    v_seq_ptr,  # as the plain one
    packed_ptr,  # [T * N / 8] out, uint8: the spikes at 1 bit each (docs/spike_pack.md "Layout"); N % 8 == 0
    T,
    N,
    S,
    C,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    HAS_V_INIT: tl.constexpr,
    DECAY_T: tl.constexpr,
    GAIN_T: tl.constexpr,
    BIAS_T: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    TRAINING: tl.constexpr,
    STORE_FINAL: tl.constexpr,
    STORE_V_SEQ: tl.constexpr,
    STEPS: tl.constexpr,  # CHUNK rounded up to a power of two; CHUNK <= 32 (a chunk's spikes are int32 bits)
    CHUNK: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``leaky_fwd_kernel`` that also writes the spikes packed: the chunk's spikes are kept as bits per neuron (as
    the counted kernel keeps them) and stored as bytes once per chunk (no second pass over them). BLOCK must be a
    multiple of 8."""
    _leaky_fwd(
        x_ptr,
        v_init_ptr,
        decay_ptr,
        gain_ptr,
        bias_ptr,
        spikes_ptr,
        v_final_ptr,
        ckpt_ptr,
        v_seq_ptr,
        packed_ptr,
        packed_ptr,
        T,
        N,
        S,
        C,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
        v_init_value,
        HAS_V_INIT,
        DECAY_T,
        GAIN_T,
        BIAS_T,
        HARD_RESET,
        STRICT,
        TRAINING,
        STORE_FINAL,
        STORE_V_SEQ,
        False,
        True,
        STEPS,
        1,
        CHUNK,
        BLOCK,
    )


@triton.jit(do_not_specialize=["T"])
def leaky_bwd_kernel(
    grad_spikes_ptr,  # [T, N] dL/ds, any float dtype
    grad_v_final_ptr,  # [N] dL/dv_T if HAS_GRAD_V_FINAL
    x_ptr,  # [T, N] the forward's input
    v_init_ptr,  # [N] the forward's initial state if HAS_V_INIT
    ckpt_ptr,  # [cdiv(T, CHUNK) - 1, N] fp32 states written by the training forward
    decay_ptr,
    gain_ptr,
    bias_ptr,
    grad_x_ptr,  # [T, N] out, x's dtype
    grad_v_init_ptr,  # [N] out, fp32, if STORE_GRAD_V_INIT
    grad_decay_ptr,  # [N] out, fp32 per-neuron sum over t of dL/dh_t * v_{t-1}, if NEED_GRAD_DECAY
    grad_gain_ptr,  # [N] out, fp32 per-neuron sum of dL/dh_t * x_t, if NEED_GRAD_GAIN
    grad_bias_ptr,  # [N] out, fp32 per-neuron sum of dL/dh_t, if NEED_GRAD_BIAS
    grad_v_seq_ptr,  # [T, N] dL/dv_t of the forward's v_seq, fp32, if HAS_GRAD_V_SEQ
    T,
    N,
    S,
    C,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    sg_param,
    HAS_V_INIT: tl.constexpr,
    HAS_GRAD_V_FINAL: tl.constexpr,
    STORE_GRAD_V_INIT: tl.constexpr,
    DECAY_T: tl.constexpr,
    GAIN_T: tl.constexpr,
    BIAS_T: tl.constexpr,
    NEED_GRAD_DECAY: tl.constexpr,
    NEED_GRAD_GAIN: tl.constexpr,
    NEED_GRAD_BIAS: tl.constexpr,
    HAS_GRAD_V_SEQ: tl.constexpr,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask, n_row, a, b, c, v_init = _neuron_block(
        N,
        S,
        C,
        decay_ptr,
        gain_ptr,
        bias_ptr,
        decay,
        gain,
        bias,
        v_init_ptr,
        v_init_value,
        DECAY_T,
        GAIN_T,
        BIAS_T,
        HAS_V_INIT,
        BLOCK,
    )
    if HAS_GRAD_V_FINAL:
        grad_v = tl.load(grad_v_final_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        grad_v = tl.zeros([BLOCK], dtype=tl.float32)
    acc_decay = tl.zeros([BLOCK], dtype=tl.float32)
    acc_gain = tl.zeros([BLOCK], dtype=tl.float32)
    acc_bias = tl.zeros([BLOCK], dtype=tl.float32)

    n_chunks = tl.cdiv(T, CHUNK)
    for j in range(n_chunks):
        # Rebuild the chunk's pre-reset potentials from its checkpoint, loading the chunk's dL/ds (and dL/dv_seq) with
        # its x, before the walk's first store (x kept only when NEED_GRAD_GAIN: dead code otherwise)
        t0, v_start, hs, xs = recompute_chunk(
            n_chunks - 1 - j,
            ckpt_ptr,
            n_row,
            offs,
            mask,
            v_init,
            T,
            _input_of_step,
            (x_ptr, grad_spikes_ptr, grad_v_seq_ptr, n_row, offs, mask),
            (HAS_GRAD_V_SEQ,),
            a,
            b,
            c,
            v_threshold,
            v_reset,
            STRICT,
            HARD_RESET,
            CHUNK,
        )
        # Walk the chunk backwards: dL/dh_t = dL/ds_t * sg_t + dL/dv_t * dv_t/dh_t; dL/dv_{t-1} = a * dL/dh_t.
        for k in tl.static_range(CHUNK - 1, -1, -1):
            valid = t0 + k < T
            row = (t0 + k) * n_row
            h = hs[k]
            x, grad_s, grad_v_t = xs[k]
            if HAS_GRAD_V_SEQ:
                # dL/dv_t = a dL/dh_{t+1} (+ dL/dv_T) + dL/dv_seq[t]
                grad_v = tl.where(valid, grad_v + grad_v_t, grad_v)
            grad_h, grad_v = walk_step(
                grad_s, grad_v, h, a, valid, v_threshold, v_reset, sg_param, HARD_RESET, STRICT, DETACH_RESET, SG_ID
            )
            tl.store(grad_x_ptr + row + offs, (grad_h * b).to(grad_x_ptr.dtype.element_ty), mask=mask & valid)
            if NEED_GRAD_DECAY:
                # v_{t-1}: rebuilt from h_{t-1} rather than stashed, to save registers
                if k == 0:
                    v_prev = v_start
                else:
                    v_prev = state_after(hs[k - 1], v_threshold, v_reset, STRICT, HARD_RESET)
                acc_decay += grad_h * v_prev
            if NEED_GRAD_GAIN:
                acc_gain += grad_h * x
            if NEED_GRAD_BIAS:
                acc_bias += grad_h
    if STORE_GRAD_V_INIT:
        tl.store(grad_v_init_ptr + offs, grad_v, mask=mask)
    if NEED_GRAD_DECAY:
        tl.store(grad_decay_ptr + offs, acc_decay, mask=mask)
    if NEED_GRAD_GAIN:
        tl.store(grad_gain_ptr + offs, acc_gain, mask=mask)
    if NEED_GRAD_BIAS:
        tl.store(grad_bias_ptr + offs, acc_bias, mask=mask)
