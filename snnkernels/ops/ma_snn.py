"""Autograd of MA-SNN's released multi-dimensional attention on the Triton sweeps.

The passes and the backward: docs/ma_snn.md "Sweeps and backward".

Y = relu(g_s * g_c * g_t * X) = g_s[b, p] * sc[t, b, c] * relu(X) with sc = g_t * g_c (every gate > 0):

    forward:  pass 1  per (t, b, c): sum, max, argmax over H * W          -> TA / CA gates (tiny) -> sc
              pass 2  per (b, p): sum, max, argmax over (t, c) of sc * X   -> SA map g_s (small conv)
              pass 3  Y = relu(X) * sc * g_s
    backward: sweep 1 per pixel sum_(t,c) dY relu(X) sc and per row sum_p dY relu(X) g_s
              SA backward (small) -> sweep 2 per row sum_p X * dL/ds_avg   -> TA / CA backward (tiny)
              sweep 3 dX of every path at once

CA's statistics of X1 = g_t * X come from pass 1 without a pass of their own: the mean is sum_t g_t s1,
and the max is max_t g_t m1 because g_t > 0 (exact: rounding is monotone). The tiny and small stages
(MLPs, the SA conv) are torch; the backward differentiates them with ``torch.func.vjp`` on the saved
statistics (X-sized work never goes through autograd), which ``torch.compile`` traces: no graph break.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..reference.ma_snn import mlp_gate
from .autograd_helpers import forward_settings, needs_training
from .gated_leaky_triton import gated_leaky_bwd, gated_leaky_fwd
from .layout import match_layout, rows_layout
from .leaky_triton import DEFAULT_CHUNK
from .ma_snn_triton import apply_gates, bwd_input, bwd_pixel_sums, pixel_stats, row_dot_map, row_stats

__all__ = ["ma_attention_fused", "ma_gates_fused", "ma_gated_neuron_fused", "time_gate", "channel_gate", "spatial_gate"]


def time_gate(sums: torch.Tensor, maxima: torch.Tensor, plane: int, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """g_t [T, B] from the row statistics: the shared MLP on the mean and on the max over (c, h, w)."""
    T, B, C = sums.shape
    avg = sums.sum(dim=2) / (C * plane)
    top = maxima.max(dim=2).values  # one index per (t, b): the max pooling's gradient goes there only
    return mlp_gate(avg.t(), top.t(), w0, w1).t()


def channel_gate(
    sums: torch.Tensor, maxima: torch.Tensor, plane: int, g_t: torch.Tensor | None, w0: torch.Tensor, w1: torch.Tensor
) -> torch.Tensor:
    """g_c [B, C] of X1 = g_t * X (or X) from the row statistics: mean and max over (t, h, w)."""
    T = sums.shape[0]
    if g_t is not None:
        sums, maxima = sums * g_t[:, :, None], maxima * g_t[:, :, None]
    avg = sums.sum(dim=0) / (T * plane)
    top = maxima.max(dim=0).values
    return mlp_gate(avg, top, w0, w1)


def spatial_gate(avg: torch.Tensor, top: torch.Tensor, weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """g_s [B, H * W] from the per-pixel mean and max over (t, c): sig(conv([avg; max])), 'same' padding."""
    B = avg.shape[0]
    maps = torch.stack([avg, top], dim=1).view(B, 2, height, width)
    k = weight.shape[-1]
    return torch.sigmoid(F.conv2d(maps, weight, padding=(k - 1) // 2)).view(B, height * width)


def _row_scale(sums, maxima, plane, dims, ta, ca):
    """sc [T, B, C] = g_t * g_c for the present gates (ones when neither is)."""
    g_t = time_gate(sums, maxima, plane, *ta) if "T" in dims else None
    g_c = channel_gate(sums, maxima, plane, g_t, *ca) if "C" in dims else None
    if g_t is not None and g_c is not None:
        return g_t[:, :, None] * g_c[None]
    if g_t is not None:
        return g_t[:, :, None].expand(sums.shape).contiguous()
    if g_c is not None:
        return g_c[None].expand(sums.shape).contiguous()
    return torch.ones_like(sums)


def _gates_forward(x: torch.Tensor, dims: str, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight):
    """Passes 1 and 2 and the tiny stages: (sc [T, B, C], g_s [B, H * W] or None, the tensors the backward
    of the gates needs: the caller saves them first)."""
    T, B, C, H, W = x.shape
    plane = H * W
    ta = (ta_w0.float(), ta_w1.float()) if "T" in dims else None
    ca = (ca_w0.float(), ca_w1.float()) if "C" in dims else None
    sums, maxima, row_at = row_stats(x)
    scale = _row_scale(sums, maxima, plane, dims, ta, ca)
    spatial = avg = top = pix_at = None
    if "S" in dims:
        pix_sums, top, pix_at = pixel_stats(x, scale)
        avg = pix_sums / (T * C)
        spatial = spatial_gate(avg, top, sa_weight.float(), H, W)
    saved = (x, sums, maxima, row_at, scale, avg, top, pix_at, spatial, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight)
    return scale, spatial, saved


N_SAVED = 14  # tensors of _gates_forward's third result


def _gates_backward(
    saved: tuple,
    dims: str,
    needs: tuple,
    grad_scale: torch.Tensor,
    grad_map: torch.Tensor | None,
    grad_y: torch.Tensor | None,
    grad_x_part: torch.Tensor | None = None,
) -> tuple:
    """The backward of the gates given dL/dsc and dL/dg_s: dX through the poolings, plus in the same sweep
    the apply pass dY * g_s * sc * [X > 0] (given ``grad_y``) or a dX share computed elsewhere
    (``grad_x_part``: the gated neuron's); and the weights' gradients. ``needs``: needs_input_grad of
    (x, dims, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight)."""
    (x, sums, maxima, row_at, scale, avg, top, pix_at, spatial, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight) = saved
    T, B, C, H, W = x.shape
    plane = H * W
    grads = dict.fromkeys(("ta_w0", "ta_w1", "ca_w0", "ca_w1", "sa"))
    avg_map = top_map = None
    if "S" in dims:
        _, vjp = torch.func.vjp(lambda a, m, w: spatial_gate(a, m, w.float(), H, W), avg, top, sa_weight)
        d_avg, top_map, grads["sa"] = vjp(grad_map)
        avg_map = d_avg / (T * C)  # each X2 element's share of the mean
        grad_scale = grad_scale + row_dot_map(x, avg_map)
        # the max path: sc[t*, b, c*] * X[t*, b, c*, p] at each pixel's argmax (t*, c*)
        t_star, c_star = (pix_at // C).long(), (pix_at % C).long()
        b_idx = torch.arange(B, device=x.device)[:, None].expand_as(t_star)
        p_idx = torch.arange(plane, device=x.device)[None, :].expand_as(t_star)
        x_at = x.flatten(3)[t_star, b_idx, c_star, p_idx].float()
        grad_scale = grad_scale.index_put((t_star, b_idx, c_star), top_map * x_at, accumulate=True)
    grad_sums = grad_maxima = torch.zeros_like(sums)
    if "T" in dims or "C" in dims:
        used = [sums, maxima] + ([ta_w0, ta_w1] if "T" in dims else []) + ([ca_w0, ca_w1] if "C" in dims else [])

        def scale_of(s1, m1, *ws):
            it = iter(w.float() for w in ws)
            ta = (next(it), next(it)) if "T" in dims else None
            ca = (next(it), next(it)) if "C" in dims else None
            return _row_scale(s1, m1, plane, dims, ta, ca)

        _, vjp = torch.func.vjp(scale_of, *used)
        out = vjp(grad_scale)
        grad_sums, grad_maxima = out[0], out[1]
        rest = list(out[2:])
        if "T" in dims:
            grads["ta_w0"], grads["ta_w1"] = rest[0], rest[1]
            rest = rest[2:]
        if "C" in dims:
            grads["ca_w0"], grads["ca_w1"] = rest[0], rest[1]
    # grad_sums is dL/d(sum over H * W): it reaches every element of the row as it is
    grad_x = bwd_input(grad_y, x, scale, spatial, avg_map, top_map, pix_at, grad_sums, grad_maxima, row_at, grad_x_part)

    def cast(g, like, i):
        return g.to(like.dtype) if (needs[i] and g is not None and like is not None) else None

    return (
        grad_x if needs[0] else None,
        None,
        cast(grads["ta_w0"], ta_w0, 2),
        cast(grads["ta_w1"], ta_w1, 3),
        cast(grads["ca_w0"], ca_w0, 4),
        cast(grads["ca_w1"], ca_w1, 5),
        cast(grads["sa"], sa_weight, 6),
    )


class _MAAttentionFunction(torch.autograd.Function):
    """Y = g_s * sc * relu(X): the gates' sweeps, then pass 3 (the apply)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dims: str, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight):
        scale, spatial, saved = _gates_forward(x, dims, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight)
        ctx.dims = dims
        ctx.save_for_backward(*saved)
        return apply_gates(x, scale, spatial)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):
        saved = ctx.saved_tensors
        x, scale, spatial = saved[0], saved[4], saved[8]
        grad_y = match_layout(grad_y, x)
        grad_map, grad_scale = bwd_pixel_sums(grad_y, x, scale, spatial)
        return _gates_backward(saved, ctx.dims, ctx.needs_input_grad, grad_scale, grad_map, grad_y)


class _MAGatesFunction(torch.autograd.Function):
    """(sc, g_s) of the attention without applying them: for the gated neuron, which applies them inside
    its time loop and returns their gradients (dL/dsc, dL/dg_s) from its own backward sweep."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dims: str, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight):
        scale, spatial, saved = _gates_forward(x, dims, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight)
        ctx.dims = dims
        ctx.save_for_backward(*saved)
        return scale, spatial

    @staticmethod
    def backward(ctx: Any, grad_scale: torch.Tensor, grad_map: torch.Tensor | None):
        return _gates_backward(ctx.saved_tensors, ctx.dims, ctx.needs_input_grad, grad_scale, grad_map, None)


class _MAGatedNeuronFunction(torch.autograd.Function):
    """The gates' two sweeps, then the gated neuron applies relu(X) * sc * g_s in its time loop
    (docs/ma_snn.md "Gates inside the neuron"). Backward: the gated neuron's sweep (the apply pass's dX share
    and dL/dsc, dL/dg_s), then ONE pooled-paths sweep that also adds that share: no separate sum of two dX tensors."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        dims: str,
        ta_w0,
        ta_w1,
        ca_w0,
        ca_w1,
        sa_weight,
        neuron: tuple,
        chunk: int,
        training: bool,
        count: bool,
    ):
        scale, spatial, saved = _gates_forward(x, dims, ta_w0, ta_w1, ca_w0, ca_w1, sa_weight)
        spikes, ckpt, counts = gated_leaky_fwd(
            x, scale, spatial, True, *forward_settings(neuron), training, chunk, count
        )
        ctx.dims, ctx.neuron, ctx.chunk = dims, neuron, chunk
        ctx.save_for_backward(*saved, ckpt)
        ctx.mark_non_differentiable(counts)
        return spikes, counts

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor, _grad_counts: Any):
        saved = ctx.saved_tensors
        gates, ckpt = saved[:N_SAVED], saved[N_SAVED]
        x, scale, spatial = gates[0], gates[4], gates[8]
        grad_x_part, grad_scale, grad_map = gated_leaky_bwd(
            match_layout(grad_spikes, x), x, scale, spatial, ckpt, True, *ctx.neuron, ctx.chunk
        )
        grads = _gates_backward(
            gates,
            ctx.dims,
            ctx.needs_input_grad,
            grad_scale,
            grad_map if spatial is not None else None,
            None,
            grad_x_part,
        )
        return grads + (None,) * 4


def _mlp_weights(
    ta: tuple[torch.Tensor, torch.Tensor] | None, ca: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor | None, ...]:
    """(ta_w0, ta_w1, ca_w0, ca_w1), None for an absent gate: the autograd Functions take them one by one."""
    return (*(ta if ta is not None else (None, None)), *(ca if ca is not None else (None, None)))


def ma_attention_fused(
    x: torch.Tensor,
    dims: str,
    ta: tuple[torch.Tensor, torch.Tensor] | None,
    ca: tuple[torch.Tensor, torch.Tensor] | None,
    sa: torch.Tensor | None,
) -> torch.Tensor:
    """relu of the released TA / CA / SA chain on x [T, B, C, H, W] (Triton sweeps). ``ta`` / ``ca`` are the
    shared MLPs' (w0 [hidden, in], w1 [in, hidden]) matrices, ``sa`` the [1, 2, k, k] conv weight."""
    ta_w0, ta_w1, ca_w0, ca_w1 = _mlp_weights(ta, ca)
    return _MAAttentionFunction.apply(rows_layout(x), dims, ta_w0, ta_w1, ca_w0, ca_w1, sa)


def ma_gates_fused(
    x: torch.Tensor,
    dims: str,
    ta: tuple[torch.Tensor, torch.Tensor] | None,
    ca: tuple[torch.Tensor, torch.Tensor] | None,
    sa: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attention's gates (sc = g_t * g_c fp32 [T, B, C], g_s fp32 [B, H * W] or None) by passes 1 and
    2, differentiable in x and the weights; ``relu(x) * sc * g_s`` is the attention's output."""
    ta_w0, ta_w1, ca_w0, ca_w1 = _mlp_weights(ta, ca)
    return _MAGatesFunction.apply(rows_layout(x), dims, ta_w0, ta_w1, ca_w0, ca_w1, sa)


def ma_gated_neuron_fused(
    x: torch.Tensor,
    dims: str,
    ta: tuple[torch.Tensor, torch.Tensor] | None,
    ca: tuple[torch.Tensor, torch.Tensor] | None,
    sa: torch.Tensor | None,
    *,
    neuron: tuple,
    chunk: int = DEFAULT_CHUNK,
    count_spikes: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Spikes of the leaky neuron (``neuron``: ``ops.gated_leaky_triton.gated_leaky``'s settings) driven by
    the attention's output relu(X) * sc * g_s, which is never formed; with ``count_spikes`` also the spikes
    per (t, b, c), int32 [T, B, C]."""
    ta_w0, ta_w1, ca_w0, ca_w1 = _mlp_weights(ta, ca)
    x = rows_layout(x)
    training = needs_training(x, ta_w0, ta_w1, ca_w0, ca_w1, sa)
    spikes, counts = _MAGatedNeuronFunction.apply(
        x, dims, ta_w0, ta_w1, ca_w0, ca_w1, sa, tuple(neuron), chunk, training, count_spikes
    )
    return (spikes, counts) if count_spikes else spikes
