"""Comparison helpers: verbose closeness checks with per-dtype tolerances, and the spike-flip budget."""
from __future__ import annotations

import torch

# Gradient tolerances (rtol, atol) by the dtype of the tensors compared. fp32: the kernel and autograd
# of the reference add the same terms in a different order and evaluate exp/division differently, and
# the error grows with T through the recurrence, hence 1e-5 rather than fp32's 1.2e-7 epsilon. fp16 /
# bf16: both sides compute in fp32 and round the result once, so one or two units of the format's
# last place (fp16 2^-10 ~ 1e-3, bf16 2^-7 ~ 8e-3) plus the fp32 drift.
GRAD_TOL = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def assert_close_verbose(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float,
                         name: str = "tensor", mask: torch.Tensor | None = None) -> None:
    """allclose with a report: mismatch count, worst errors, first bad indices, NaN/inf mismatches."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    bad = ~torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=False)
    if mask is not None:
        bad &= mask.cpu()
    if not bad.any():
        return
    err = (a - e).abs()
    idx = bad.nonzero()[:5].tolist()
    nan_bad = (a.isnan() != e.isnan()).sum().item()
    raise AssertionError(
        f"{name}: {bad.sum().item()} / {bad.numel()} elements differ (rtol={rtol}, atol={atol}); "
        f"max abs err {err[bad].max().item():.3e}, max rel err {(err / e.abs().clamp_min(1e-30))[bad].max().item():.3e}; "
        f"NaN mismatches {nan_bad}; first bad indices {idx}: actual {[a[tuple(i)].item() for i in idx]} "
        f"expected {[e[tuple(i)].item() for i in idx]}"
    )


def assert_grads_close(actual, expected, dtype: torch.dtype, names, mask: torch.Tensor | None = None) -> None:
    rtol, atol = GRAD_TOL[dtype]
    for a, e, name in zip(actual, expected, names):
        if a is None and e is None:
            continue
        assert a is not None and e is not None, f"{name}: one side has no gradient"
        m = mask if (mask is not None and a.shape == mask.shape) else None
        assert_close_verbose(a, e, rtol, atol, name, m)


def spike_flip_report(spikes: torch.Tensor, spikes_ref: torch.Tensor, h_ref: torch.Tensor, v_threshold: float,
                      eps: float) -> tuple[float, torch.Tensor]:
    """Check that spikes differ only where the reference potential sits within ``eps`` of the threshold.

    Returns the flip rate (flips / spikes compared) and a [T, N]-shaped mask (flattened neurons) of the
    entries that remain comparable: a neuron is dropped from its first flip on, since its trajectories
    diverge after it. Raises if a flip happens away from the threshold.
    """
    s = spikes.reshape(spikes.shape[0], -1)
    r = spikes_ref.reshape(spikes.shape[0], -1)
    h = h_ref.reshape(spikes.shape[0], -1)
    flips = s != r
    far = flips & ((h - v_threshold).abs() >= eps)
    if far.any():
        t, n = far.nonzero()[0].tolist()
        raise AssertionError(
            f"spike differs away from the threshold at t={t}, neuron {n}: h_ref={h[t, n].item():.9g}, "
            f"threshold {v_threshold}, ours {s[t, n].item()}, reference {r[t, n].item()}"
        )
    first_flip = torch.where(flips.any(0), flips.float().argmax(0), torch.full_like(flips[0], s.shape[0], dtype=torch.long))
    steps = torch.arange(s.shape[0], device=s.device)[:, None]
    keep = steps < first_flip[None, :]
    return flips.sum().item() / flips.numel(), keep.reshape(spikes.shape)
