"""Comparison helpers: verbose closeness checks, per-dtype tolerances, and the spike-flip budget."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Tolerances (atol, rtol) for GRADIENTS, by the dtype of the tensors compared. Forward spikes and final
# states are compared exactly (atol = rtol = 0) wherever both sides compute the same charge.
#
# fp32: the kernel and autograd-through-the-reference add the same terms in a different order (the kernel
#   forms dL/dh = dL/ds * sg + dL/dv * dv/dh in one expression; autograd accumulates the reset's two paths
#   separately) and evaluate the surrogate with different exp/division code. Each step contributes a few
#   ulps (2^-24 ~ 6e-8 relative) and the recurrence carries the error back over T <= 13 steps with a factor
#   |decay * dv/dh| <~ 1: measured <= 8e-7 absolute on gradients of size ~1..5, i.e. ~1e-6 relative with
#   headroom under rtol 1e-5; atol 1e-6 covers elements where two O(1) terms cancel (the error is relative to
#   the terms, not to the result).
# fp16 / bf16 (x, grad_x, v_init): both sides compute the gradient in fp32 and round it once to the format,
#   so they differ by at most one unit in the last place when the fp32 values straddle a rounding boundary.
#   One ulp is <= 2^-10 |g| (fp16) / 2^-7 |g| (bf16) of the value; Triton 3.6's *interpreter* converts
#   fp32 -> bf16 by truncation instead of round-to-nearest, which adds a second ulp. Hence rtol = 2 ulps:
#   2^-9 ~ 2e-3 (fp16) and 2^-6 ~ 1.6e-2 (bf16); atol 1e-5 covers fp32 noise on values near 0 (and fp16
#   subnormals, spaced 6e-8).
# fp64: only reference-vs-hand-written-loop comparisons, both in fp64 (measured <= 4e-15 absolute).
GRAD_TOL: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-12, 1e-10),
    torch.float32: (1e-6, 1e-5),
    torch.float16: (1e-5, 2.0**-9),
    torch.bfloat16: (1e-5, 2.0**-6),
}

# The spike-flip budget (see compare_spikes): a flip is tolerated only where the reference potential lies
# within FLIP_EPS of the threshold. Two algebraically equal charge formulas differ by an ulp or two of h per
# step (fp32 ulp of |h| ~ 1..4 is 1.2e-7 .. 4.8e-7), and the difference decays with the leak, so 1e-5
# (about 64 ulps at 1) is generous yet far below the typical distance of h from the threshold.
FLIP_EPS = {torch.float32: 1e-5, torch.float64: 1e-12}
MAX_FLIP_RATE = 1e-3  # for continuous random input: flips per neuron-step


# The start of a script run in a fresh process as on a machine that never built snnkernels._C (the native
# extension): its import fails.
HIDE_NATIVE_EXTENSION = """
import importlib.abc, sys
class _NoAOT(importlib.abc.MetaPathFinder):  # as if snnkernels._C had never been built
    def find_spec(self, name, path, target=None):
        if name == "snnkernels._C":
            raise ImportError("snnkernels._C hidden by the test")
sys.meta_path.insert(0, _NoAOT())
"""


def grad_tol(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for gradients of ``dtype``."""
    return GRAD_TOL[dtype]


def assert_close_verbose(
    actual: torch.Tensor,
    expected: torch.Tensor,
    atol: float,
    rtol: float,
    name: str = "tensor",
    mask: torch.Tensor | None = None,
) -> None:
    """``|actual - expected| <= atol + rtol * |expected|`` elementwise (NaN equals NaN only at the same place).

    On failure the message gives the mismatch count, max abs / rel error, NaN and inf mismatches and the first
    few bad indices with both values. ``mask`` (broadcastable bool) restricts the comparison to its True
    entries. Shapes must match; dtypes may differ (both sides are compared in fp64).
    """
    assert isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor), f"{name}: not tensors"
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    nan_mismatch = a.isnan() != e.isnan()
    inf_mismatch = (a.isinf() | e.isinf()) & (a != e) & ~a.isnan() & ~e.isnan()
    both_nan = a.isnan() & e.isnan()
    err = (a - e).abs()
    bad = ~((a == e) | (err <= atol + rtol * e.abs()) | both_nan)  # a == e: equal infinities
    bad |= nan_mismatch | inf_mismatch
    if mask is not None:
        bad &= torch.broadcast_to(mask.detach().cpu().bool(), bad.shape)
    if not bad.any():
        return
    finite_bad = bad & err.isfinite()
    max_abs = err[finite_bad].max().item() if finite_bad.any() else float("nan")
    rel = err / e.abs()
    max_rel = rel[finite_bad].max().item() if finite_bad.any() else float("nan")
    idx = bad.nonzero()[:6].tolist()
    pairs = ", ".join(f"{tuple(i)}: {a[tuple(i)].item():.9g} vs {e[tuple(i)].item():.9g}" for i in idx)
    raise AssertionError(
        f"{name}: {int(bad.sum())} / {bad.numel()} elements differ (atol={atol:g}, rtol={rtol:g}); "
        f"max abs err {max_abs:.3e}, max rel err {max_rel:.3e}; NaN mismatches {int(nan_mismatch.sum())}, "
        f"inf mismatches {int(inf_mismatch.sum())}; first bad (index: actual vs expected) {pairs}"
    )


def assert_equal_verbose(actual: torch.Tensor, expected: torch.Tensor, name: str = "tensor") -> None:
    """Bit-exact equality (dtype included), with the verbose report."""
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != expected {expected.dtype}"
    assert_close_verbose(actual, expected, 0.0, 0.0, name)


def assert_grad_close(
    actual: torch.Tensor | None,
    expected: torch.Tensor | None,
    name: str,
    *,
    reduced: bool = False,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """A gradient against the expected one with the tolerance of its dtype.

    ``reduced`` marks a gradient that is a sum over many neurons and steps (a shared coefficient's): both sides
    sum the same terms in a different order, so the error is relative to the size of the terms rather than of a
    result that may cancel to ~0. The bound is then taken normwise: ``atol + rtol * max|expected|`` for every
    element (the largest channel's sum is a lower bound on the terms' magnitude).
    """
    assert (actual is None) == (expected is None), f"{name}: gradient present on one side only"
    if actual is None:
        return
    assert actual.dtype == expected.dtype, f"{name}: grad dtype {actual.dtype} != expected {expected.dtype}"
    atol, rtol = grad_tol(dtype or expected.dtype)
    if reduced:
        atol = atol + rtol * expected.detach().abs().max().item()
    assert_close_verbose(actual, expected, atol, rtol, f"grad {name}", mask)


@dataclass
class SpikeComparison:
    flip_rate: float  # first flips per compared neuron-step
    flips: int  # neurons whose spike train differs somewhere (each counted once, at its first flip)
    step_mask: torch.Tensor  # [T, ...] True where both trains are still comparable (before the neuron's 1st flip)
    neuron_mask: torch.Tensor  # [...] True for neurons that never flipped: their gradients are comparable

    @property
    def any_flip(self) -> bool:
        return self.flips > 0


def compare_spikes(
    spk_test: torch.Tensor,
    spk_ref: torch.Tensor,
    h_ref_or_margin: torch.Tensor,
    v_threshold: float | None = None,
    *,
    eps: float,
    max_flip_rate: float | None = None,
    name: str = "spikes",
) -> SpikeComparison:
    """Spike trains that may differ only by flips at the threshold (the spike-flip budget).

    ``h_ref_or_margin`` is the reference's pre-reset potential h_t ([T, ...]); with ``v_threshold`` given the
    margin is ``|h - v_threshold|``, else the tensor already is the margin. A neuron's first differing step
    must have margin < ``eps`` (a last-bit difference of h decided the spike), else AssertionError. From that
    step on the two trajectories diverge legitimately, so the neuron's later steps are excluded
    (``step_mask``) and so are all its gradients, earlier steps included, since BPTT carries the future back
    (``neuron_mask``). The flip rate (first flips per neuron-step) must not exceed ``max_flip_rate``.
    """
    assert spk_test.shape == spk_ref.shape == h_ref_or_margin.shape, (
        f"{name}: shapes {tuple(spk_test.shape)}, {tuple(spk_ref.shape)}, {tuple(h_ref_or_margin.shape)}"
    )
    T = spk_test.shape[0]
    s = spk_test.detach().reshape(T, -1).cpu().double()
    r = spk_ref.detach().reshape(T, -1).cpu().double()
    h = h_ref_or_margin.detach().reshape(T, -1).cpu().double()
    margin = h if v_threshold is None else (h - v_threshold).abs()
    differ = s != r
    flips_so_far = differ.int().cumsum(0)
    before_first = flips_so_far == 0  # steps strictly before the neuron's first flip
    first = differ & (flips_so_far == 1)  # the first flip of each neuron
    far = first & ~(margin < eps)
    if far.any():
        t, n = far.nonzero()[0].tolist()
        raise AssertionError(
            f"{name}: {int(far.sum())} spike(s) differ away from the threshold; first at step {t}, neuron {n}: "
            f"test {s[t, n].item():g}, reference {r[t, n].item():g}, margin |h - v_th| = {margin[t, n].item():.3e} "
            f">= eps {eps:g}"
        )
    flips = int(first.sum())
    rate = flips / max(differ.numel(), 1)
    if max_flip_rate is not None:
        assert rate <= max_flip_rate, f"{name}: flip rate {rate:.3e} ({flips} flips) above the cap {max_flip_rate:g}"
    step_mask = before_first.reshape(spk_test.shape)
    neuron_mask = (~differ.any(0)).reshape(spk_test.shape[1:])
    return SpikeComparison(rate, flips, step_mask.to(spk_test.device), neuron_mask.to(spk_test.device))


def random_like_layout(
    shape, dtype, device, layout: str = "contiguous", generator=None, scale: float = 1.0, shift: float = 0.0
) -> torch.Tensor:
    """``randn * scale + shift`` of ``shape`` laid out as asked: "contiguous", "transposed" (last two dims swapped
    in memory), "expanded" (stride 0 along dim 0: every step the same values), "sliced" (every other element of
    a larger buffer), or "channels_last" (4-D, or 5-D [T, B, C, H, W] with each step channels-last)."""
    shape = tuple(shape)

    def rnd(s):
        t = torch.randn(s, generator=generator, dtype=torch.float32, device="cpu") * scale + shift
        return t.to(device=device, dtype=dtype)

    if layout == "contiguous" or len(shape) < 2:
        return rnd(shape)
    if layout == "expanded":
        return rnd((1,) + shape[1:]).expand(shape)
    if layout == "sliced":
        return rnd(shape[:-1] + (2 * shape[-1],))[..., ::2]
    if layout == "transposed":
        return rnd(shape[:-2] + (shape[-1], shape[-2])).transpose(-1, -2)
    if layout == "channels_last":
        if len(shape) == 4:
            return rnd(shape).contiguous(memory_format=torch.channels_last)
        if len(shape) == 5:
            return rnd((shape[0] * shape[1],) + shape[2:]).contiguous(memory_format=torch.channels_last).view(shape)
    raise ValueError(f"layout {layout!r} for shape {shape}")


# Kernel-vs-reference harness (shared by test_leaky and test_leaky_properties)


def make_coefficient(kind: str, value: float, C: int, spread: float = 0.1, dtype=torch.float32, device="cpu"):
    """A coefficient as a float, or as a tensor of shape [] / [1] / [C] with or without requires_grad."""
    if kind == "float":
        return value
    grad = not kind.endswith("-nograd")
    base = kind.removesuffix("-nograd")
    if base == "0d":
        t = torch.tensor(value)
    elif base == "1elem":
        t = torch.tensor([value])
    elif base == "channel":
        t = value + spread * torch.randn(C)
    else:
        raise ValueError(kind)
    return t.to(device, dtype).requires_grad_(grad)


def run_both(
    fn, backend, x, v_init=None, *, grad_on=("spikes", "final"), grad_layout="contiguous", grad_mask=None, **kwargs
):
    """Run ``fn`` with ``backend`` and with the reference on the same inputs, backprop the same random grad
    outputs (laid out as ``grad_layout``) through the outputs named in ``grad_on``. Returns
    ``{backend: (outputs, {leaf name: grad})}`` for the two backends."""
    leaves = {"x": x, "v_init": v_init, **{k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}}
    leaves = {k: v for k, v in leaves.items() if isinstance(v, torch.Tensor) and v.requires_grad}
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    results = {}
    grad_outs = None
    for b in (backend, "torch"):
        out = fn(x, v_init, backend=b, **kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        if grad_outs is None:
            grad_outs = [random_like_layout(o.shape, o.dtype, o.device, grad_layout, gen) for o in outs]
            if grad_mask is not None:
                grad_outs = [g * grad_mask.to(g.dtype) for g in grad_outs]
        names = ("spikes", "final")[: len(outs)]
        chosen = [(o, g) for o, g, n in zip(outs, grad_outs, names, strict=True) if n in grad_on]
        grads = {}
        if leaves and chosen and torch.is_grad_enabled():
            gs = torch.autograd.grad(
                [o for o, _ in chosen], list(leaves.values()), [g for _, g in chosen], allow_unused=True
            )
            grads = dict(zip(leaves, gs, strict=True))
        results[b] = (outs, grads)
    return results


COEFFICIENT_NAMES = ("decay", "input_gain", "bias", "tau")


def check_both(results, backend, x, *, min_activity=True):
    """Forward bit-exact, no NaN anywhere, every gradient within the tolerance of its dtype."""
    (outs, grads), (outs_ref, grads_ref) = results[backend], results["torch"]
    assert len(outs) == len(outs_ref)
    spikes, spikes_ref = outs[0], outs_ref[0]
    assert spikes.shape == x.shape and spikes.dtype == x.dtype, (spikes.shape, spikes.dtype)
    assert not torch.isnan(spikes).any(), "NaN in spikes: an element was never written"
    assert_equal_verbose(spikes, spikes_ref, "spikes")
    if min_activity and spikes.numel() >= 200:  # the inputs must make the comparison meaningful
        rate = spikes.float().mean().item()
        assert 0.01 < rate < 0.99, f"spike rate {rate}: test data does not exercise both branches"
    if len(outs) == 2:
        v, v_ref = outs[1], outs_ref[1]
        assert v.shape == x.shape[1:] and v.dtype == v_ref.dtype == torch.float32, (v.shape, v.dtype)
        assert not torch.isnan(v).any(), "NaN in the final state: an element was never written"
        assert_equal_verbose(v, v_ref, "final state")
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        g, g_ref = grads[name], grads_ref[name]
        assert g is not None and g_ref is not None, f"grad {name} missing ({g is None}, {g_ref is None})"
        assert not torch.isnan(g).any(), f"NaN in grad {name}: an element was never written"
        # an fp64 leaf (coefficient, v_init) of an fp32-state computation gets fp32-accurate gradients
        tol_dtype = torch.float32 if g.dtype == torch.float64 and x.dtype != torch.float64 else None
        assert_grad_close(g, g_ref, name, reduced=name in COEFFICIENT_NAMES, dtype=tol_dtype)


def assert_same_training_step(run, reference_run, weight_grad_nonzero) -> None:
    """Two runs of one network, ``(module, output, dL/dx)`` each, bit for bit: output, input gradient, every
    parameter gradient and buffer (running statistics), state-dict keys. ``weight_grad_nonzero(name)`` picks the
    parameters whose gradient must be non-zero (so that the comparison cannot pass on dead layers)."""
    (m, out, gx), (ref, out_ref, gx_ref) = run, reference_run
    assert out_ref.abs().sum() > 0, "the tiny network never fires on this input"
    assert_equal = torch.testing.assert_close
    assert_equal(out, out_ref, rtol=0, atol=0)
    assert_equal(gx, gx_ref, rtol=0, atol=0)
    assert gx_ref.abs().sum() > 0
    for (n, p), (_, q) in zip(m.named_parameters(), ref.named_parameters(), strict=True):
        assert_equal(p.grad, q.grad, rtol=0, atol=0, msg=n)
        if weight_grad_nonzero(n):
            assert q.grad.abs().sum() > 0, n
    for (n, b), (_, c) in zip(m.named_buffers(), ref.named_buffers(), strict=True):
        assert_equal(b, c, rtol=0, atol=0, msg=n)
    assert m.state_dict().keys() == ref.state_dict().keys()


def saved_storages(fn):
    """({storage data_ptr: (dtype, bytes)} of what autograd saves while ``fn`` runs, fn's result)."""
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = (t.dtype, t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return saved, out
