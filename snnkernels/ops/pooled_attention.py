"""Autograd of the fused pooled attentions (TCJA and its ablations, T-XA, DTA's output product).

Each op is two sweeps over the full tensor each way (docs/tcja_dta.md "The two-sweep floor"):

    forward:  Z = mean_hw X (sweep 1)  ->  tiny stage on [T, B, C]  ->  Y = map(X, gates) (sweep 2)
    backward: row sums of dL/dY against X (sweep 1)  ->  tiny stage backward  ->  dL/dX (sweep 2)

The sweeps are the Triton ops of ``pooled_attention_triton``. The tiny stage (1-D convolutions over T or C,
products, sigmoids: a few thousand values) is plain fp32 torch here, with its backward written out so
that the whole op is traceable by ``torch.compile`` (no ``torch.autograd.grad`` inside a backward).
The equations are those of ``snnkernels.reference.tcja`` / ``snnkernels.reference.dta``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..reference.tcja import conv1d_same
from .autograd_helpers import as_tensor, distinct
from .layout import match_layout, plane_size, rows_layout
from .pooled_attention_triton import CROSS, GATE, dta_bwd, dta_fwd, row_map_bwd, row_map_fwd, row_sums

__all__ = [
    "tcja_fused",
    "tcja_gate_fused",
    "tcja_gate_from_counts",
    "txa_fused",
    "dta_product_fused",
    "conv1d_same_vjp",
    "pooled_mean",
]


def conv1d_same_vjp(
    z: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, need_weight: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(dL/dz, dL/dweight) of ``conv1d_same(z, weight)`` given dL/dout; z [N, Cin, L]."""
    k = weight.shape[-1]
    left = (k - 1) // 2
    z_padded = F.pad(z, (left, k - 1 - left))
    grad_padded = torch.nn.grad.conv1d_input(z_padded.shape, weight, grad_out)
    grad_weight = torch.nn.grad.conv1d_weight(z_padded, weight.shape, grad_out) if need_weight else None
    return grad_padded[..., left : left + z.shape[-1]], grad_weight


# The two conv orientations on Z [T, B, C]: along time (the C channels are the conv-channels) and along
# channels (the T steps are the conv-channels). Both return [T, B, C].
def _conv_along_time(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return conv1d_same(z.permute(1, 2, 0), weight).permute(2, 0, 1)


def _conv_along_channels(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return conv1d_same(z.permute(1, 0, 2), weight).permute(1, 0, 2)


def _conv_along_time_vjp(z, weight, grad, need_weight):
    dz, dw = conv1d_same_vjp(z.permute(1, 2, 0), weight, grad.permute(1, 2, 0).contiguous(), need_weight)
    return dz.permute(2, 0, 1), dw


def _conv_along_channels_vjp(z, weight, grad, need_weight):
    dz, dw = conv1d_same_vjp(z.permute(1, 0, 2), weight, grad.permute(1, 0, 2).contiguous(), need_weight)
    return dz.permute(1, 0, 2), dw


def _sigmoid_vjp(grad: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    return grad * (sig * (1.0 - sig))


def plane_means(x: torch.Tensor) -> torch.Tensor:
    """Z = mean over H, W in fp32, [T, B, C] (sweep 1 of every forward); not differentiable (``pooled_mean``
    is)."""
    sums, _ = row_sums(x, None)
    return sums / plane_size(x)


def _cast_like(grad: torch.Tensor | None, like: torch.Tensor | None, needed: bool) -> torch.Tensor | None:
    return grad.to(like.dtype) if (needed and grad is not None) else None


class _PooledMeanFunction(torch.autograd.Function):
    """Z = mean over H, W (fp32 [T, B, C]) by the row-sum sweep; the backward is the broadcast dZ / HW (a
    stride-0 view: autograd adds it to X's other gradients, no pass of its own)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.shape, ctx.dtype, ctx.plane = x.shape, x.dtype, plane_size(x)
        return plane_means(x)

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor):
        return (grad_z / ctx.plane).to(ctx.dtype)[:, :, :, None, None].expand(ctx.shape)


def pooled_mean(x: torch.Tensor) -> torch.Tensor:
    """Differentiable fp32 mean over H, W of [T, B, C, H, W] by the Triton row-sum sweep."""
    return _PooledMeanFunction.apply(rows_layout(x))


def _tcja_gate_stage(z: torch.Tensor, weight_t: torch.Tensor | None, weight_c: torch.Tensor | None, mode: str):
    """(TLA, CLA, F = sig(TLA * CLA) or of one branch) on Z [T, B, C] in fp32; an absent branch is None."""
    tla = _conv_along_time(z, weight_t.float()) if mode != "cla" else None
    cla = _conv_along_channels(z, weight_c.float()) if mode != "tla" else None
    return tla, cla, torch.sigmoid(tla * cla if mode == "both" else (tla if mode == "tla" else cla))


class _TCJAFunction(torch.autograd.Function):
    """Y = X * sig(TLA(Z) * CLA(Z)) or a single branch; TLA slides along time (weight_t [C, C, K_T]),
    CLA along channels (weight_c [T, T, K_C])."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight_t: torch.Tensor | None, weight_c: torch.Tensor | None, mode: str
    ) -> torch.Tensor:
        z = plane_means(x)
        tla, cla, gate = _tcja_gate_stage(z, weight_t, weight_c, mode)
        ctx.mode = mode
        ctx.save_for_backward(x, z, gate, tla, cla, weight_t, weight_c)
        return row_map_fwd(x, gate, None, GATE)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):
        x, z, gate, tla, cla, weight_t, weight_c = ctx.saved_tensors
        grad_y = match_layout(grad_y, x)
        _, grad_gate = row_sums(grad_y, x)  # dL/dgate = sum_hw dL/dY * X
        grad_logits = _sigmoid_vjp(grad_gate, gate)
        grad_z = torch.zeros_like(z)
        grad_wt = grad_wc = None
        if tla is not None:
            grad_tla = grad_logits * cla if cla is not None else grad_logits
            dz, grad_wt = _conv_along_time_vjp(z, weight_t.float(), grad_tla, ctx.needs_input_grad[1])
            grad_z = grad_z + dz
        if cla is not None:
            grad_cla = grad_logits * tla if tla is not None else grad_logits
            dz, grad_wc = _conv_along_channels_vjp(z, weight_c.float(), grad_cla, ctx.needs_input_grad[2])
            grad_z = grad_z + dz
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = row_map_bwd(grad_y, x, gate, None, grad_z / plane_size(x), GATE)
        return (
            grad_x,
            _cast_like(grad_wt, weight_t, ctx.needs_input_grad[1]),
            _cast_like(grad_wc, weight_c, ctx.needs_input_grad[2]),
            None,
        )


class TXAGates:
    """T-XA's per-row terms a = scale_t * sig(Qt), b = scale_c * sig(Qc) with Qt = conv of Z along
    channels (conv_t [T, T, 3]) and Qc = conv of Z along time (conv_c [C, C, 6]), and their backward."""

    def __init__(
        self,
        z: torch.Tensor,
        conv_t_weight: torch.Tensor,
        conv_c_weight: torch.Tensor,
        scale_t: torch.Tensor,
        scale_c: torch.Tensor,
    ) -> None:
        self.sig_t = torch.sigmoid(_conv_along_channels(z, conv_t_weight.float()))
        self.sig_c = torch.sigmoid(_conv_along_time(z, conv_c_weight.float()))
        self.a = scale_t.float() * self.sig_t
        self.b = scale_c.float() * self.sig_c

    @staticmethod
    def backward(z, sig_t, sig_c, a, b, conv_t_weight, conv_c_weight, scale_t, scale_c, grad_a, grad_b, needs):
        """(dz, d conv_t, d conv_c, d scale_t, d scale_c) from dL/da, dL/db; ``needs`` flags the four params."""
        grad_scale_t = (grad_a * sig_t).sum() if needs[2] else None
        grad_scale_c = (grad_b * sig_c).sum() if needs[3] else None
        grad_qt = _sigmoid_vjp(grad_a * scale_t.float(), sig_t)
        grad_qc = _sigmoid_vjp(grad_b * scale_c.float(), sig_c)
        dz_t, grad_wt = _conv_along_channels_vjp(z, conv_t_weight.float(), grad_qt, needs[0])
        dz_c, grad_wc = _conv_along_time_vjp(z, conv_c_weight.float(), grad_qc, needs[1])
        return (
            dz_t + dz_c,
            _cast_like(grad_wt, conv_t_weight, needs[0]),
            _cast_like(grad_wc, conv_c_weight, needs[1]),
            _cast_like(grad_scale_t, scale_t, needs[2]),
            _cast_like(grad_scale_c, scale_c, needs[3]),
        )


def cross_grads(sums: torch.Tensor, dots: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    """dL/da = sum_hw g (x + b) = dots + b sums and dL/db = dots + a sums, for the product (x + a)(x + b)."""
    return dots + b * sums, dots + a * sums


class _TXAFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, conv_t_weight, conv_c_weight, scale_t, scale_c):
        z = plane_means(x)
        g = TXAGates(z, conv_t_weight, conv_c_weight, scale_t, scale_c)
        ctx.save_for_backward(x, z, g.sig_t, g.sig_c, g.a, g.b, conv_t_weight, conv_c_weight, scale_t, scale_c)
        return row_map_fwd(x, g.a, g.b, CROSS)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):
        x, z, sig_t, sig_c, a, b, wt, wc, st, sc = ctx.saved_tensors
        grad_y = match_layout(grad_y, x)
        sums, dots = row_sums(grad_y, x)
        grad_a, grad_b = cross_grads(sums, dots, a, b)
        dz, *param_grads = TXAGates.backward(
            z, sig_t, sig_c, a, b, wt, wc, st, sc, grad_a, grad_b, ctx.needs_input_grad[1:5]
        )
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = row_map_bwd(grad_y, x, a, b, dz / plane_size(x), CROSS)
        return grad_x, *param_grads


class _DTAProductFunction(torch.autograd.Function):
    """Y = sig(NA * XA(X)) * S with T-XA's XA formed inside the sweep, never stored. With ``na_bias``
    ([T * C], t-major as T-NA's channels) NA = na + na_bias + X: T-NA's decoding bias and residual are
    added inside the sweep too, so its output is never stored either."""

    @staticmethod
    def forward(ctx, x, na, spikes, conv_t_weight, conv_c_weight, scale_t, scale_c, na_bias):
        na, spikes = rows_layout(na), match_layout(spikes, x)  # NA read in place in T-NA's [B, T] storage
        T, B, C = x.shape[:3]
        z = plane_means(x)
        g = TXAGates(z, conv_t_weight, conv_c_weight, scale_t, scale_c)
        bias_rows = None if na_bias is None else na_bias.float().view(T, 1, C).expand(T, B, C)
        ctx.save_for_backward(
            x, na, spikes, z, g.sig_t, g.sig_c, g.a, g.b, conv_t_weight, conv_c_weight, scale_t, scale_c, na_bias
        )
        return dta_fwd(x, na, spikes, g.a, g.b, bias_rows)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):
        x, na, spikes, z, sig_t, sig_c, a, b, wt, wc, st, sc, na_bias = ctx.saved_tensors
        T, B, C = x.shape[:3]
        grad_y = match_layout(grad_y, x)
        bias_rows = None if na_bias is None else na_bias.float().view(T, 1, C).expand(T, B, C)
        grad_x32, grad_na, grad_s, sums, dots, na_sums = dta_bwd(
            grad_y, x, na, spikes, a, b, bias_rows, ctx.needs_input_grad[2]
        )
        grad_a, grad_b = cross_grads(sums, dots, a, b)
        dz, *param_grads = TXAGates.backward(
            z, sig_t, sig_c, a, b, wt, wc, st, sc, grad_a, grad_b, ctx.needs_input_grad[3:7]
        )
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_x32.add_((dz / plane_size(x))[:, :, :, None, None]).to(x.dtype)
        grad_bias = None
        if na_bias is not None and ctx.needs_input_grad[7]:
            grad_bias = na_sums.sum(dim=1).reshape(na_bias.shape).to(na_bias.dtype)
        return (
            grad_x,
            grad_na if ctx.needs_input_grad[1] else None,
            grad_s if ctx.needs_input_grad[2] else None,
            *param_grads,
            grad_bias,
        )


def tcja_fused(
    x: torch.Tensor, weight_t: torch.Tensor | None, weight_c: torch.Tensor | None, mode: str
) -> torch.Tensor:
    """Fused ``tcja_reference`` (checked arguments, Triton-capable x)."""
    return _TCJAFunction.apply(*distinct(rows_layout(x), weight_t, weight_c), mode)


def tcja_gate_fused(
    x: torch.Tensor, weight_t: torch.Tensor | None, weight_c: torch.Tensor | None, mode: str
) -> torch.Tensor:
    """``tcja_gate_reference`` with the mean by the Triton sweep; the tiny stage is torch autograd."""
    return _tcja_gate_stage(pooled_mean(x), weight_t, weight_c, mode)[2]


class _CountMeanFunction(torch.autograd.Function):
    """Z = mean over H, W of binary spikes, from their counts per (t, b, c) (the neuron kernel's): exact, and
    no pass over the spikes; the backward is the mean's broadcast dZ / HW, as ``_PooledMeanFunction``."""

    @staticmethod
    def forward(ctx: Any, spikes: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        ctx.shape, ctx.dtype, ctx.plane = spikes.shape, spikes.dtype, plane_size(spikes)
        return counts.float() / ctx.plane

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor):
        return (grad_z / ctx.plane).to(ctx.dtype)[:, :, :, None, None].expand(ctx.shape), None


def tcja_gate_from_counts(
    spikes: torch.Tensor, counts: torch.Tensor, weight_t: torch.Tensor | None, weight_c: torch.Tensor | None, mode: str
) -> torch.Tensor:
    """TCJA's gate F [T, B, C] of binary ``spikes`` from their counts per (t, b, c)
    (docs/tcja_dta.md "Gate after pooling, spike counts"); equal to ``tcja_gate_fused(spikes, ...)`` bit for
    bit (both means are exact sums divided once), differentiable in the spikes and the weights."""
    return _tcja_gate_stage(_CountMeanFunction.apply(spikes, counts), weight_t, weight_c, mode)[2]


def txa_fused(
    x: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
) -> torch.Tensor:
    """Fused ``txa_reference``."""
    return _TXAFunction.apply(
        *distinct(rows_layout(x), conv_t_weight, conv_c_weight, as_tensor(scale_t, x), as_tensor(scale_c, x))
    )


def dta_product_fused(
    x: torch.Tensor,
    na: torch.Tensor,
    spikes: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
    na_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused ``sig(NA * txa_reference(x, ...)) * spikes`` with NA = ``na``, or ``na + na_bias + x`` when
    ``na_bias`` ([T * C], t-major) is given."""
    return _DTAProductFunction.apply(
        *distinct(
            rows_layout(x),
            na,
            spikes,
            conv_t_weight,
            conv_c_weight,
            as_tensor(scale_t, x),
            as_tensor(scale_c, x),
            na_bias,
        )
    )
