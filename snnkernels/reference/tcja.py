"""Eager reference of TCJA (temporal-channel joint attention, TCJA-SNN), docs/tcja_dta.md "TCJA".

Plain torch, autograd does the backward. This is the ground truth the fused kernels will be tested
against and, until they exist, the implementation behind ``snnkernels.nn.TCJA``. Never edit it to
match a kernel.

Symbols follow the paper: the TLA conv slides along TIME (kernel length K_T, the C channels
are its conv-channels) and the CLA conv slides along CHANNELS (kernel length K_C, the T steps are its
conv-channels). The official module's constructor names these two lengths the other way round (see
``snnkernels.nn.TCJA``); this file uses the paper's names only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["tcja_reference", "tcja_gate_reference", "conv1d_same", "check_tcja_arguments"]

TCJA_MODES = ("both", "tla", "cla")


def conv1d_same(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PyTorch's ``padding='same'`` 1-D convolution (stride 1, no bias), with the padding spelt out.

    out[:, o, j] = sum_i sum_k weight[o, i, k] * z[:, i, j + k - left] with left = (K - 1) // 2 and zeros
    outside the axis; for an even K the extra zero goes on the RIGHT (K = 2: 0 / 1, K = 4: 1 / 2).

    Args:
        z (torch.Tensor): [N, Cin, L], the axis of length L is the one the kernel slides along.
        weight (torch.Tensor): [Cout, Cin, K].
    """
    k = weight.shape[-1]
    left = (k - 1) // 2
    return F.conv1d(F.pad(z, (left, k - 1 - left)), weight)


def _checked_kernel(weight: torch.Tensor | None, kernel_size: int | None, rows: int, name: str, mode: str) -> None:
    if weight is None:
        raise ValueError(f"{name} is required with mode={mode!r}")
    expected = (rows, rows, kernel_size if kernel_size is not None else weight.shape[-1])
    if weight.dim() != 3 or tuple(weight.shape) != expected:
        raise ValueError(f"{name} must have shape {list(expected)}, got {list(weight.shape)}")


def check_tcja_arguments(
    x: torch.Tensor,
    weight_t: torch.Tensor | None,
    weight_c: torch.Tensor | None,
    kernel_size_t: int | None,
    kernel_size_c: int | None,
    mode: str,
) -> None:
    """The checks every TCJA implementation applies first (clear messages instead of conv errors)."""
    if mode not in TCJA_MODES:
        raise ValueError(f"mode must be one of {TCJA_MODES}, got {mode!r}")
    if x.dim() != 5:
        raise ValueError(f"x must have shape [T, B, C, H, W], got {list(x.shape)}")
    T, C = x.shape[0], x.shape[2]
    if mode in ("both", "tla"):
        _checked_kernel(weight_t, kernel_size_t, C, "weight_t (TLA, [C, C, K_T])", mode)
    if mode in ("both", "cla"):
        _checked_kernel(weight_c, kernel_size_c, T, "weight_c (CLA, [T, T, K_C])", mode)


def tcja_reference(
    x: torch.Tensor,
    weight_t: torch.Tensor | None,
    weight_c: torch.Tensor | None,
    kernel_size_t: int | None = None,
    kernel_size_c: int | None = None,
    mode: str = "both",
) -> torch.Tensor:
    """TCJA on ``x`` [T, B, C, H, W]: ``Y = X * sig(TLA * CLA)``, or an ablation.

    Args:
        x (torch.Tensor): [T, B, C, H, W], in TCJA-SNN the spikes of the preceding LIF.
        weight_t (torch.Tensor, Optional): TLA weight Wt [C, C, K_T], slides along time (the official
            module's ``conv_c.weight``). Unused (may be None) when ``mode='cla'``.
        weight_c (torch.Tensor, Optional): CLA weight Wc [T, T, K_C], slides along channels (the official
            module's ``conv.weight``). Unused (may be None) when ``mode='tla'``.
        kernel_size_t (int, Optional): K_T, checked against ``weight_t``. Default: taken from ``weight_t``.
        kernel_size_c (int, Optional): K_C, checked against ``weight_c``. Default: taken from ``weight_c``.
        mode (str): ``'both'`` (TCJA: sig(TLA * CLA)), ``'tla'`` (sig(TLA)) or ``'cla'`` (sig(CLA)).
            Default: ``'both'``.

    Returns:
        torch.Tensor: Y, same shape as ``x``.
    """
    gate = tcja_gate_reference(x, weight_t, weight_c, kernel_size_t, kernel_size_c, mode)
    return x * gate[:, :, :, None, None]


def tcja_gate_reference(
    x: torch.Tensor,
    weight_t: torch.Tensor | None,
    weight_c: torch.Tensor | None,
    kernel_size_t: int | None = None,
    kernel_size_c: int | None = None,
    mode: str = "both",
) -> torch.Tensor:
    """TCJA's gate ``F = sig(TLA(Z) * CLA(Z))`` [T, B, C] (arguments as ``tcja_reference``).

    F > 0 is constant over (h, w), so ``MaxPool(X * F) = F * MaxPool(X)`` and ``AvgPool(X * F) =
    F * AvgPool(X)`` (docs/tcja_dta.md "Gate after pooling, spike counts"): a caller may apply it after the
    pooling that follows TCJA.
    """
    check_tcja_arguments(x, weight_t, weight_c, kernel_size_t, kernel_size_c, mode)
    # Z[t, b, c] = mean over the H*W positions
    z = x.mean(dim=(3, 4))  # [T, B, C]

    tla = cla = None
    if mode in ("both", "tla"):
        # slide along time: the C channels are the conv-channels
        tla = conv1d_same(z.permute(1, 2, 0), weight_t).permute(2, 0, 1)  # [B, C, T] -> [T, B, C]
    if mode in ("both", "cla"):
        # slide along channels: the T steps are the conv-channels
        cla = conv1d_same(z.permute(1, 0, 2), weight_c).permute(1, 0, 2)  # [B, T, C] -> [T, B, C]

    if mode == "both":
        return torch.sigmoid(tla * cla)
    return torch.sigmoid(tla if mode == "tla" else cla)
