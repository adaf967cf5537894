"""The leaky neuron's step, forward and backward, and its recompute schedule: the pieces every Triton kernel
that runs the neuron's time loop shares (``leaky``, ``gated_leaky``, ``dta_leaky``; the STAA and TCSA
steps use the fire and gradient rules), so the neuron's math is written once.

One step (``snnkernels.neuron_models``): ``h = a v + b x + c``, ``s = fire(h)``, ``v' = reset(h, s)``, rounded
op by op (every kernel launches with ``enable_fp_fusion=False``, so no multiply-add is contracted and the
spikes equal the eager reference's). Backward: ``dL/dh = dL/ds sg + dL/dv' dv'/dh`` and ``dL/dv = a dL/dh``.
The charge is ``charge`` in the forward and in every backward's recompute alike (docs/neuron.md "Non-finite
values": an infinite membrane of a leaking neuron charges to NaN, as SpikingJelly's charge does).

Recompute schedule: the forward stores fp32 checkpoints of v entering chunks 1, 2, ... (CHUNK steps each);
the backward rebuilds a chunk's pre-reset potentials from its checkpoint, then walks the chunk backwards.

Time loop: ``forward_chunks`` (the gated and DTA forwards) and ``recompute_chunk`` (all three backwards) take
the kernel's own step as a jit function argument, inlined at compile time. Each reads a whole chunk's inputs
before its first store (one memory latency per chunk rather than one per step: Triton passes no ``noalias``).
The leaky forward keeps its loop (it also carries each chunk's spike bits), and every backward keeps its walk
back (each carries its own sums).
"""

import triton
import triton.language as tl

from .surrogate import surrogate_derivative


@triton.jit
def fire(h, v_threshold, STRICT: tl.constexpr):
    d = h - v_threshold
    if STRICT:
        return d > 0.0
    else:
        return d >= 0.0


@triton.jit
def _reset(h, spike, v_threshold, v_reset, HARD_RESET: tl.constexpr):
    """h (1 - s) + v_reset s (hard) or h - v_threshold s (soft), the eager reference's arithmetic: for finite
    h the hard form selects, and an overflowed charge (h = inf) gives NaN as the reference does."""
    s = spike.to(tl.float32)
    if HARD_RESET:
        return h * (1.0 - s) + v_reset * s
    else:
        return h - v_threshold * s


@triton.jit
def charge(v, x, a, b, c):
    """h = a v + b x + c, minus (v - v) where the neuron leaks (a != 1): v - v is +0 for a finite v, and h - 0 is h
    bit for bit (-0 included), so finite states keep their bits; for v = +-inf it is NaN, as SpikingJelly's
    v + (x - (v - v_reset)) / tau gives, while IF (a = 1) keeps +-inf (SpikingJelly's v + x)."""
    h = a * v + b * x + c
    return h - tl.where(a != 1.0, v - v, 0.0)


@triton.jit
def step(v, x, a, b, c, valid, v_threshold, v_reset, STRICT: tl.constexpr, HARD_RESET: tl.constexpr):
    """One forward step: the charge h, its spike, and the state after (v itself where not valid: past T)."""
    h = charge(v, x, a, b, c)
    spike = fire(h, v_threshold, STRICT)
    return h, spike, tl.where(valid, _reset(h, spike, v_threshold, v_reset, HARD_RESET), v)


@triton.jit
def state_after(h, v_threshold, v_reset, STRICT: tl.constexpr, HARD_RESET: tl.constexpr):
    """The state after a rebuilt charge h (the backward's recompute), as the forward computed it."""
    return _reset(h, fire(h, v_threshold, STRICT), v_threshold, v_reset, HARD_RESET)


@triton.jit
def grad_charge(
    grad_s,
    grad_v,
    h,
    v_threshold,
    v_reset,
    sg_param,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
):
    """dL/dh_t = dL/ds_t * sg_t + dL/dv_t * dv_t/dh_t (v_t the post-reset state)."""
    sg = surrogate_derivative(h - v_threshold, SG_ID, sg_param)
    if HARD_RESET:
        dv_dh = tl.where(fire(h, v_threshold, STRICT), 0.0, 1.0)
        if not DETACH_RESET:
            dv_dh = dv_dh + (v_reset - h) * sg
    else:
        dv_dh = tl.zeros_like(h) + 1.0
        if not DETACH_RESET:
            dv_dh = dv_dh - v_threshold * sg
    return grad_s * sg + grad_v * dv_dh


@triton.jit
def walk_step(
    grad_s,
    grad_v,
    h,
    a,
    keep,
    v_threshold,
    v_reset,
    sg_param,
    HARD_RESET: tl.constexpr,
    STRICT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SG_ID: tl.constexpr,
):
    """One step of the backward walk: dL/dh_t (zero where not keep: past T, or outside the tile) and
    dL/dv_{t-1} = a dL/dh_t (grad_v itself where not keep)."""
    grad_h = tl.where(
        keep,
        grad_charge(grad_s, grad_v, h, v_threshold, v_reset, sg_param, HARD_RESET, STRICT, DETACH_RESET, SG_ID),
        0.0,
    )
    return grad_h, tl.where(keep, grad_h * a, grad_v)


@triton.jit
def store_checkpoint(ckpt_ptr, ci, n_state, offs, mask, v):
    """The recompute schedule: chunk ci > 0 starts from an fp32 checkpoint of v (row ci - 1)."""
    tl.store(ckpt_ptr + (ci - 1) * n_state + offs, v, mask=mask & (ci > 0))


@triton.jit
def chunk_start(ckpt_ptr, ci, n_state, offs, mask, v_init):
    """The state entering chunk ci, as the forward had it: its checkpoint, or v_init for chunk 0."""
    v = tl.load(ckpt_ptr + (ci - 1) * n_state + offs, mask=mask & (ci > 0), other=0.0)
    return tl.where(ci > 0, v, v_init)


@triton.jit
def forward_chunks(
    v,
    T,
    ckpt_ptr,
    n_state,
    state_offs,
    mask,
    load,
    step,
    args,
    FLAGS: tl.constexpr,
    TRAINING: tl.constexpr,
    CHUNK: tl.constexpr,
):
    """The forward's time loop: chunks of CHUNK unrolled steps, T a run-time bound; with TRAINING the state
    entering each chunk is checkpointed. ``load(t, T, args, FLAGS)`` (a jit function, inlined) reads step t's
    inputs (masked past T) and ``step(v, t, T, inputs, args, FLAGS)`` runs step t on them, stores its outputs and
    returns the state after it. All CHUNK loads are issued before the chunk's first store: Triton passes no
    ``noalias``, so a load placed after a store waits for it and each step would cost a memory latency.
    ``args`` is a tuple of run-time values; the step's constexprs travel apart in ``FLAGS`` (Triton passes a
    tuple's constexprs on as run-time values), read back as ``NAME: tl.constexpr = FLAGS[i]`` (unpacking them
    would make run-time values too)."""
    for ci in range(tl.cdiv(T, CHUNK)):
        t0 = ci * CHUNK
        if TRAINING:
            # chunk 0 restarts from v_init, so its state is not stored
            store_checkpoint(ckpt_ptr, ci, n_state, state_offs, mask, v)
        inputs = ()
        for k in tl.static_range(CHUNK):
            inputs = inputs + (load(t0 + k, T, args, FLAGS),)
        for k in tl.static_range(CHUNK):
            v = step(v, t0 + k, T, inputs[k], args, FLAGS)
    return v


@triton.jit
def recompute_chunk(
    ci,
    ckpt_ptr,
    n_state,
    state_offs,
    mask,
    v_init,
    T,
    step_input,
    args,
    FLAGS: tl.constexpr,
    a,
    b,
    c,
    v_threshold,
    v_reset,
    STRICT: tl.constexpr,
    HARD_RESET: tl.constexpr,
    CHUNK: tl.constexpr,
):
    """The backward's recompute of chunk ci: (its first step t0, the state entering it, the pre-reset potentials hs
    rebuilt from that state exactly as the forward computed them, xs: what the walk back keeps of each step).
    ``step_input(t, T, args, FLAGS)`` (a jit function; arguments as ``forward_chunks``') gives step t's (kept value,
    neuron input): the kept value holds everything the walk back reads of step t (its input, the incoming
    gradients), so the chunk's loads all issue here, before the walk's first store (``forward_chunks``' why)."""
    t0 = ci * CHUNK
    v_start = chunk_start(ckpt_ptr, ci, n_state, state_offs, mask, v_init)
    v = v_start
    hs = ()
    xs = ()
    for k in tl.static_range(CHUNK):
        x, y = step_input(t0 + k, T, args, FLAGS)
        h = charge(v, y, a, b, c)
        hs = hs + (h,)
        xs = xs + (x,)
        v = state_after(h, v_threshold, v_reset, STRICT, HARD_RESET)
    return t0, v_start, hs, xs
