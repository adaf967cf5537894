"""Eager reference of DTA (dual temporal-channel-wise attention, DTA-SNN), docs/tcja_dta.md "DTA".

Plain torch, autograd does the backward. Ground truth for the future fused kernels and, until they
exist, the implementation behind ``snnkernels.nn.TXA`` / ``TNA`` / ``DTA``. Never edit it to match a kernel.

The functions take the library layout [T, B, C, H, W]. T-NA fuses time and channels into D = T * C
channels with the official code's t-major index ``j = t * C + c`` (a reshape of [B, T, C, H, W]), so it
permutes to [B, T, ...] first: that keeps official weights valid.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .tcja import conv1d_same

__all__ = [
    "TNAParams",
    "txa_reference",
    "tna_reference",
    "tna_fused_reference",
    "dta_reference",
    "dta_product_reference",
]


class TNAParams(NamedTuple):
    """The T-NA tensors, D = T * C fused channels; the comment gives the official ``T_NA`` state-dict key.

    The 1x1 convolution weights keep their official 4-D shapes so a module can pass its parameters as
    they are.
    """

    encoding_weight: torch.Tensor  # [D, D, 1, 1]   encoding.0.weight   (We)
    encoding_bias: torch.Tensor  # [D]              encoding.0.bias     (be)
    dw_weight: torch.Tensor  # [D, 1, 5, 5]         tca.LTCA.0.weight   (depth-wise 5x5)
    dw_bias: torch.Tensor  # [D]                    tca.LTCA.0.bias     (b1)
    dilated_weight: torch.Tensor  # [D, 1, k, k]    tca.LTCA.1.weight   (d2; k = 1 in DTA)
    dilated_bias: torch.Tensor  # [D]               tca.LTCA.1.bias     (b2)
    pw_weight: torch.Tensor  # [D, D, 1, 1]         tca.LTCA.2.weight   (Wp)
    pw_bias: torch.Tensor  # [D]                    tca.LTCA.2.bias     (bp)
    mlp_weight1: torch.Tensor  # [hid, D]           tca.MLP_block.0.weight (Wm1)
    mlp_weight2: torch.Tensor  # [D, hid]           tca.MLP_block.2.weight (Wm2)
    decoding_weight: torch.Tensor  # [D, D, 1, 1]   decoding.weight     (Wd)
    decoding_bias: torch.Tensor  # [D]              decoding.bias       (bd)


def _check_5d(x: torch.Tensor, name: str) -> None:
    if x.dim() != 5:
        raise ValueError(f"{name} must have shape [T, B, C, H, W], got {list(x.shape)}")


def _pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """1x1 convolution [B, D, H, W] -> [B, D', H, W] written as the per-pixel matrix product W @ x + b."""
    return torch.einsum("oi,bihw->bohw", weight.flatten(1), x) + bias[:, None, None]


def _depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """Depth-wise k x k convolution (odd k) with bias and 'same' zero padding dilation * (k - 1) / 2."""
    k = weight.shape[-1]
    if k == 1:
        # DTA's "dilated" conv: a 1x1 depth-wise kernel is a per-channel scale (dilation has no effect)
        return x * weight.reshape(1, -1, 1, 1) + bias[:, None, None]
    return F.conv2d(x, weight, bias, padding=dilation * (k - 1) // 2, dilation=dilation, groups=x.shape[1])


def txa_reference(
    x: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
) -> torch.Tensor:
    """T-XA on ``x`` [T, B, C, H, W]: ``XA = (X + scale_t * sig(Qt)) * (X + scale_c * sig(Qc))``.

    Args:
        x (torch.Tensor): [T, B, C, H, W], DTA's real-valued conv+BN output.
        conv_t_weight (torch.Tensor): Wt [T, T, 3]: the T steps are the conv-channels, it slides along the
            CHANNEL axis with padding 1 / 1 (official ``conv_t.weight``).
        conv_c_weight (torch.Tensor): Wc [C, C, 6]: the C channels are the conv-channels, it slides along
            TIME with padding 2 / 3 (official ``conv_c.weight``).
        scale_t (torch.Tensor | float): lambda_t, 0-d (official ``scale_t``, init 1).
        scale_c (torch.Tensor | float): lambda_c, 0-d (official ``scale_c``, init 1).

    Returns:
        torch.Tensor: XA, same shape as ``x``. Not a gate: the attention maps are added to X, then the two
        branches are multiplied, so XA is quadratic in X.
    """
    _check_5d(x, "x")
    z = x.mean(dim=(3, 4))  # [T, B, C]
    # PyTorch 'same' padding: K = 3 pads 1 / 1 along C; K = 6 pads 2 left / 3 right along T
    q_t = conv1d_same(z.permute(1, 0, 2), conv_t_weight).permute(1, 0, 2)  # [B, T, C] -> [T, B, C]
    q_c = conv1d_same(z.permute(1, 2, 0), conv_c_weight).permute(2, 0, 1)  # [B, C, T] -> [T, B, C]
    a_t = torch.sigmoid(q_t)[:, :, :, None, None]
    a_c = torch.sigmoid(q_c)[:, :, :, None, None]
    return (x + scale_t * a_t) * (x + scale_c * a_c)


def tna_fused_reference(
    x2: torch.Tensor,
    params: TNAParams,
    *,
    dilation: int = 3,
    attn_shortcut: bool = True,
) -> torch.Tensor:
    """T-NA on the fused tensor ``x2`` [B, D, H, W] (the official ``T_NA`` input).

    Args:
        x2 (torch.Tensor): [B, D, H, W], D = T * C with the t-major channel index t * C + c.
        params (TNAParams): the T-NA weights.
        dilation (int): dilation of the second depth-wise conv (a no-op for DTA's 1x1 kernel). Default: ``3``.
        attn_shortcut (bool): add the residual ``X2``. Default: ``True``.

    Returns:
        torch.Tensor: NA [B, D, H, W].
    """
    if x2.dim() != 4:
        raise ValueError(f"x2 must have shape [B, T*C, H, W], got {list(x2.shape)}")
    p = params
    e = F.gelu(_pointwise(x2, p.encoding_weight, p.encoding_bias))  # exact (erf) GELU
    # LTCA: depth-wise 5x5 -> "dilated" depth-wise -> point-wise, all with bias
    l1 = _depthwise(e, p.dw_weight, p.dw_bias)
    l2 = _depthwise(l1, p.dilated_weight, p.dilated_bias, dilation)
    local = _pointwise(l2, p.pw_weight, p.pw_bias)
    # GTCA: MLP on the spatial mean of E, no bias and no sigmoid
    g = torch.relu(e.mean(dim=(2, 3)) @ p.mlp_weight1.t()) @ p.mlp_weight2.t()  # [B, D]
    attended = g[:, :, None, None] * local * e
    na = _pointwise(attended, p.decoding_weight, p.decoding_bias)
    return na + x2 if attn_shortcut else na


def tna_reference(
    x: torch.Tensor,
    params: TNAParams,
    *,
    dilation: int = 3,
    attn_shortcut: bool = True,
) -> torch.Tensor:
    """T-NA on ``x`` [T, B, C, H, W]: fuse to [B, T*C, H, W] (t-major), ``tna_fused_reference``, unfuse.

    Args:
        x (torch.Tensor): [T, B, C, H, W] with T * C = D of ``params``.
        params (TNAParams): the T-NA weights.
        dilation (int): see ``tna_fused_reference``. Default: ``3``.
        attn_shortcut (bool): see ``tna_fused_reference``. Default: ``True``.

    Returns:
        torch.Tensor: NA, same shape as ``x``.
    """
    _check_5d(x, "x")
    T, B, C, H, W = x.shape
    x2 = x.permute(1, 0, 2, 3, 4).reshape(B, T * C, H, W)
    na = tna_fused_reference(x2, params, dilation=dilation, attn_shortcut=attn_shortcut)
    return na.reshape(B, T, C, H, W).permute(1, 0, 2, 3, 4)


def dta_reference(
    x: torch.Tensor,
    spikes: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
    tna_params: TNAParams,
    *,
    dilation: int = 3,
    attn_shortcut: bool = True,
) -> torch.Tensor:
    """DTA: ``Y = sig(NA * XA) * S`` on the library layout [T, B, C, H, W].

    Args:
        x (torch.Tensor): [T, B, C, H, W], the conv+BN output X.
        spikes (torch.Tensor): [T, B, C, H, W], S = LIF(X).
        conv_t_weight, conv_c_weight, scale_t, scale_c: the T-XA parameters (see ``txa_reference``).
        tna_params (TNAParams): the T-NA weights, D = T * C.
        dilation (int): see ``tna_fused_reference``. Default: ``3``.
        attn_shortcut (bool): see ``tna_fused_reference``. Default: ``True``.

    Returns:
        torch.Tensor: Y, same shape as ``x``.
    """
    _check_5d(x, "x")
    if spikes.shape != x.shape:
        raise ValueError(f"spikes must have the shape of x {list(x.shape)}, got {list(spikes.shape)}")
    na = tna_reference(x, tna_params, dilation=dilation, attn_shortcut=attn_shortcut)
    return dta_product_reference(x, na, spikes, conv_t_weight, conv_c_weight, scale_t, scale_c)


def dta_product_reference(
    x: torch.Tensor,
    na: torch.Tensor,
    spikes: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
) -> torch.Tensor:
    """DTA's output stage ``sig(NA * XA) * S`` given T-NA's output ``na`` (the part the fused sweep covers)."""
    xa = txa_reference(x, conv_t_weight, conv_c_weight, scale_t, scale_c)
    return torch.sigmoid(na * xa) * spikes
