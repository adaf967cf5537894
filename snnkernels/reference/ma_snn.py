"""Eager references of MA-SNN's multi-dimensional attention (TA, CA, SA and their chains).

The math: docs/ma_snn.md. Plain torch, autograd does the backward. Ground truth for the fused Triton paths
(``ops.ma_snn``, ``ops.tcsa_step_triton``) and the implementation behind ``backend="torch"`` of the
modules in ``snnkernels.nn.ma_snn`` (the only one of ``TemporalAttentionFC`` and ``TemporalWiseAttention``,
which are eager only). Never edit it to match a kernel.

Two variants, kept apart on purpose:

- **Released code** (docs/ma_snn.md "Released attention"; BICLab/MA-SNN ``MA_SNN/module/Attention.py``,
  SpikingJelly's ``MultiDimensionalAttention``): the attention runs once on the whole sequence, before the
  neuron loop. TA pools over everything after (t, b) (C, H, W, or L in the FC layers), CA over (T, H, W) for
  each (b, c), SA over (T, C) for each pixel; the chain ends in a ReLU. Functions:
  ``time_attention_reference``, ``channel_attention_reference``, ``spatial_attention_reference`` (``g * x``,
  no ReLU), ``multi_dimensional_attention_reference`` (the chain and its ReLU) and the ``*_gate_reference``
  gates they multiply by.
- **Paper only** (the paper's Eq. 14, docs/ma_snn.md "Paper variant: TCSA-LIF"; no official code):
  ``tcsa_lif_paper_reference``, TA on the sequence, then CA and SA on the membrane potential inside the time
  loop, per step, and the paper's reset to ``v_reset``. Its neuron parameters are INFERRED: the paper gives
  none, so the defaults are the released neuron's decay 0.3, threshold 0.3 and rectangle width 0.5 (the DVS
  Gesture / Gait setting) with ``v_reset`` 0 (the released neuron instead resets to the threshold, then decays).

Layout: the library's [T, B, C, H, W] (TA also [T, B, L]); the official code is [B, T, C, H, W], and the math
does not depend on it. The shared MLPs take 2-D matrices, ``w0`` [hidden, n] and ``w1`` [n, hidden], n = T (TA)
or C (CA): the official 1x1 conv weights [out, in, 1, 1, 1] with the trailing ones flattened away. SA's conv
weight keeps its official shape [1, 2, k, k] (k odd), input channel 0 = mean, 1 = max. Max pooling sends its
gradient to the one element ``torch.max`` returns, as the official adaptive max pools do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..surrogate import Rectangle, Surrogate
from .leaky import state_dtype

__all__ = [
    "MA_DIMS",
    "check_dims",
    "time_gate_reference",
    "channel_gate_reference",
    "spatial_gate_reference",
    "time_attention_reference",
    "channel_attention_reference",
    "spatial_attention_reference",
    "multi_dimensional_attention_reference",
    "check_attention_weights",
    "mlp_gate",
    "tcsa_lif_paper_reference",
]

# every non-empty subset of T, C, S, written in the order the chain applies them
MA_DIMS = ("T", "C", "S", "TC", "TS", "CS", "TCS")

MLPWeights = tuple[torch.Tensor, torch.Tensor]


def check_dims(dims: object) -> str:
    """``dims`` if it names one of the seven attention chains; a clear error otherwise."""
    if not isinstance(dims, str) or dims not in MA_DIMS:
        raise ValueError(
            f"dims must be a non-empty subset of 'T', 'C', 'S' written in that order (one of {MA_DIMS}), got {dims!r}"
        )
    return dims


def _check_mlp(weights: object, n: int, name: str) -> MLPWeights:
    if not (isinstance(weights, (tuple, list)) and len(weights) == 2):
        raise ValueError(f"{name} must be a pair (w0 [hidden, {n}], w1 [{n}, hidden]), got {type(weights).__name__}")
    w0, w1 = weights
    if not (isinstance(w0, torch.Tensor) and isinstance(w1, torch.Tensor)):
        raise TypeError(f"{name}: w0 and w1 must be tensors, got {type(w0).__name__} and {type(w1).__name__}")
    if w0.dim() != 2 or w0.shape[1] != n:
        raise ValueError(f"{name}: w0 must have shape [hidden, {n}], got {list(w0.shape)}")
    if w1.dim() != 2 or tuple(w1.shape) != (n, w0.shape[0]):
        raise ValueError(
            f"{name}: w1 must have shape [{n}, {w0.shape[0]}] (w0 is {list(w0.shape)}), got {list(w1.shape)}"
        )
    return w0, w1


def _check_spatial_weight(weight: object) -> torch.Tensor:
    shape = list(weight.shape) if isinstance(weight, torch.Tensor) else None
    if shape is None or len(shape) != 4 or shape[:2] != [1, 2] or shape[2] != shape[3] or shape[2] % 2 == 0:
        raise ValueError(f"sa must be the conv weight [1, 2, k, k] with an odd k, got {shape or type(weight).__name__}")
    return weight


def check_attention_weights(
    x: torch.Tensor, dims: str, ta: object, ca: object, sa: object
) -> tuple[MLPWeights | None, MLPWeights | None, torch.Tensor | None]:
    """(ta, ca, sa) checked against x [T, B, C, ...] for the gates in ``dims`` (None for the others): every
    implementation of the attention applies these checks first."""
    for key, name, weights in (("T", "ta", ta), ("C", "ca", ca), ("S", "sa", sa)):
        if key in dims and weights is None:
            raise ValueError(f"{name} is required with dims={dims!r}")
    return (
        _check_mlp(ta, x.shape[0], "ta") if "T" in dims else None,
        _check_mlp(ca, x.shape[2], "ca") if "C" in dims else None,
        _check_spatial_weight(sa) if "S" in dims else None,
    )


def _check_5d(x: torch.Tensor, what: str) -> None:
    if x.dim() != 5:
        raise ValueError(f"{what} needs x of shape [T, B, C, H, W], got {list(x.shape)}")


def mlp_gate(avg: torch.Tensor, top: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """sig(W1 relu(W0 avg) + W1 relu(W0 max)) on rows [N, n]: one MLP, shared by the two pooled vectors."""

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return F.linear(torch.relu(F.linear(v, w0)), w1)

    return torch.sigmoid(mlp(avg) + mlp(top))


def time_gate_reference(x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """TA's gate g_t [T, B]: the shared MLP over T on the mean and the max of each (t, b) slice.

    ``x`` is [T, B, ...]: everything after B is pooled, so the same function serves the conv layers'
    [T, B, C, H, W] (pool over C, H, W) and the FC layers' [T, B, L] (pool over L).
    """
    if x.dim() < 3:
        raise ValueError(f"time attention needs x of shape [T, B, ...] with at least 3 dims, got {list(x.shape)}")
    w0, w1 = _check_mlp((w0, w1), x.shape[0], "ta")
    rows = x.flatten(2)  # [T, B, N]
    avg = rows.mean(dim=2).t()  # [B, T]
    top = rows.max(dim=2).values.t()
    return mlp_gate(avg, top, w0, w1).t()


def channel_gate_reference(x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """CA's gate g_c [B, C] (released code): mean and max over (T, H, W), ONE gate per (b, c) for all t."""
    _check_5d(x, "channel attention")
    w0, w1 = _check_mlp((w0, w1), x.shape[2], "ca")
    rows = x.permute(1, 2, 0, 3, 4).flatten(2)  # [B, C, T*H*W]
    return mlp_gate(rows.mean(dim=2), rows.max(dim=2).values, w0, w1)


def spatial_gate_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """SA's map g_s [B, H, W] (released code): mean and max over (T, C) per pixel, stacked as channels
    [mean; max], k x k conv with zero padding (k - 1) / 2 and no bias, sigmoid."""
    _check_5d(x, "spatial attention")
    weight = _check_spatial_weight(weight)
    planes = x.transpose(0, 1).flatten(1, 2)  # [B, T*C, H, W]
    # concatenated rather than stacked: the same values, in a layout whose conv backward Inductor compiles
    # with symbolic H and W (docs/tcja_dta.md "torch.compile with dynamic shapes")
    maps = torch.cat([planes.mean(dim=1, keepdim=True), planes.max(dim=1, keepdim=True).values], dim=1)
    k = weight.shape[-1]
    return torch.sigmoid(F.conv2d(maps, weight, padding=(k - 1) // 2))[:, 0]


def time_attention_reference(x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """TA: ``g_t * x`` for x [T, B, ...] (no ReLU); see ``time_gate_reference``.

    Args:
        x (torch.Tensor): [T, B, C, H, W] (conv layers) or [T, B, L] (FC layers).
        w0 (torch.Tensor): [T // r_t, T], the official ``ta.sharedMLP.0.weight`` flattened.
        w1 (torch.Tensor): [T, T // r_t], the official ``ta.sharedMLP.2.weight`` flattened.
    """
    g_t = time_gate_reference(x, w0, w1)
    return x * g_t.reshape(g_t.shape + (1,) * (x.dim() - 2))


def channel_attention_reference(x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """CA: ``g_c * x`` for x [T, B, C, H, W] (no ReLU); w0 [C // r_c, C], w1 [C, C // r_c]."""
    g_c = channel_gate_reference(x, w0, w1)
    return x * g_c[None, :, :, None, None]


def spatial_attention_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """SA: ``g_s * x`` for x [T, B, C, H, W] (no ReLU); weight [1, 2, k, k], k odd."""
    g_s = spatial_gate_reference(x, weight)
    return x * g_s[None, :, None]


def multi_dimensional_attention_reference(
    x: torch.Tensor,
    dims: str = "TCS",
    ta: MLPWeights | None = None,
    ca: MLPWeights | None = None,
    sa: torch.Tensor | None = None,
) -> torch.Tensor:
    """MA-SNN's released attention: the chosen gates in the order T, C, S, then a ReLU.

    ``X1 = g_t(X) X``, ``X2 = g_c(X1) X1``, ``X3 = g_s(X2) X2``, ``Y = relu(X3)``, skipping the gates not in
    ``dims``. Each gate pools the output of the previous one. Every gate is > 0, so
    ``Y = g_s g_c g_t relu(X)``.

    Args:
        x (torch.Tensor): [T, B, C, H, W], the conv + BN output. With ``dims='T'`` any [T, B, ...] works
            (the FC layers' [T, B, L]).
        dims (str): one of ``MA_DIMS``: ``'T'``, ``'C'``, ``'S'``, ``'TC'``, ``'TS'``, ``'CS'``, ``'TCS'``.
            Default: ``'TCS'``.
        ta (tuple, Optional): TA's MLP (w0 [T // r_t, T], w1 [T, T // r_t]); required when 'T' in dims.
        ca (tuple, Optional): CA's MLP (w0 [C // r_c, C], w1 [C, C // r_c]); required when 'C' in dims.
        sa (torch.Tensor, Optional): SA's conv weight [1, 2, k, k]; required when 'S' in dims.

    Returns:
        torch.Tensor: Y, same shape as ``x``.
    """
    dims = check_dims(dims)
    if dims != "T":
        _check_5d(x, f"dims={dims!r}")
    ta, ca, sa = check_attention_weights(x, dims, ta, ca, sa)
    out = x
    if "T" in dims:
        out = time_attention_reference(out, *ta)
    if "C" in dims:
        out = channel_attention_reference(out, *ca)
    if "S" in dims:
        out = spatial_attention_reference(out, sa)
    return torch.relu(out)


def tcsa_lif_paper_reference(
    x: torch.Tensor,
    ta: MLPWeights | None,
    ca: MLPWeights | None,
    sa: torch.Tensor | None,
    *,
    beta: float = 0.3,
    u_th: float = 0.3,
    v_reset: float = 0.0,
    # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
    surrogate_function: Surrogate = Rectangle(0.5),  # noqa: B008
    detach_reset: bool = False,
) -> torch.Tensor:
    """The PAPER's TCSA-LIF (its Eq. 14), NOT the released code; neuron parameters INFERRED.

    TA "Conv-POST" on the whole sequence, then CA and SA "Activate-PRE" on the integrated membrane
    potential, per time step with shared weights, then fire::

        X_TA = g_t(X) * X                                   (released TA: pools over C, H, W per (b, t))
        for t = 1..T:   (H_0 = 0)
            V_t  = H_{t-1} + X_TA[t]                        [B, C, H, W]
            U_CA = g_c'(V_t) * V_t     g_c' pools over (H, W) only: one gate per (b, c) per step
            U_t  = g_s'(U_CA) * U_CA   g_s' pools over C only: one map per (b, h, w) per step
            S_t  = Heaviside(U_t - u_th)                    (fires on U_t >= u_th)
            H_t  = v_reset * S_t + beta * U_t * (1 - S_t)

    There is no ReLU. A gate whose weights are None is skipped (the paper's ablations). The paper states
    neither beta, u_th nor v_reset; the defaults are the released code's values (decay 0.3, threshold 0.3,
    V_reset 0) and the surrogate is the released rectangle of width 0.5. The membrane state is fp32 for
    fp32 / fp16 / bf16 input and fp64 for fp64 input; the weights are cast to it.

    Args:
        x (torch.Tensor): [T, B, C, H, W], the conv + BN output.
        ta (tuple, Optional): TA's MLP (w0 [T // r_t, T], w1 [T, T // r_t]), or None.
        ca (tuple, Optional): CA's MLP (w0 [C // r_c, C], w1 [C, C // r_c]), or None.
        sa (torch.Tensor, Optional): SA's conv weight [1, 2, k, k] (the paper uses k = 7), or None.
        beta (float): decay of the membrane potential. Default: ``0.3`` (INFERRED).
        u_th (float): firing threshold. Default: ``0.3`` (INFERRED).
        v_reset (float): potential after a spike. Default: ``0.0`` (INFERRED).
        surrogate_function (Surrogate): derivative of the spike. Default: ``Rectangle(0.5)``.
        detach_reset (bool): no gradient through S_t in the reset. Default: ``False`` (as the released code).

    Returns:
        torch.Tensor: spikes S [T, B, C, H, W] in x's dtype.
    """
    _check_5d(x, "the TCSA-LIF")
    dtype = state_dtype(x.dtype)
    xs = x.to(dtype)
    if ta is not None:
        w0, w1 = _check_mlp(ta, x.shape[0], "ta")
        xs = time_attention_reference(xs, w0.to(dtype), w1.to(dtype))
    if ca is not None:
        ca = tuple(w.to(dtype) for w in _check_mlp(ca, x.shape[2], "ca"))
    if sa is not None:
        sa = _check_spatial_weight(sa).to(dtype)
    h = torch.zeros_like(xs[0])
    spikes = []
    for t in range(xs.shape[0]):
        v = h + xs[t]
        u = v[None]  # a one-step sequence: the released gates then pool over (H, W) and over C alone
        if ca is not None:
            u = channel_attention_reference(u, *ca)
        if sa is not None:
            u = spatial_attention_reference(u, sa)
        u = u[0]
        s = surrogate_function.spike(u - u_th)
        s_reset = s.detach() if detach_reset else s
        h = v_reset * s_reset + beta * u * (1.0 - s_reset)
        spikes.append(s)
    return torch.stack(spikes).to(x.dtype)
