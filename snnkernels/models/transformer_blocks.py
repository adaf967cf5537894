"""Pieces shared by the spiking transformers of ``snnkernels.models`` (docs/spiking_transformers.md).

- ``lif_node`` / ``plif_node``: SpikingJelly 0.0.0.0.x's ``MultiStepLIFNode(tau=2.0, detach_reset=True)`` and
  ``MultiStepParametricLIFNode(init_tau=2.0, detach_reset=True)``, the neurons of every official repository,
  as this library's fused multi-step neurons (docs/spiking_transformers.md "The neuron").
- ``per_step``: a stateless layer (conv, BN, pool) applied to every step of [T, B, ...].
- ``heads`` / ``merge_heads``: [T, B, C, N] <-> the official head split [T, B, heads, N, C // heads].
- ``init_linear_layernorm``: the official ``_init_weights`` of Spikformer, Spikingformer, Meta-SpikeFormer
  and QKFormer (timm's ``trunc_normal_(std=.02)`` is ``torch.nn.init.trunc_normal_`` with the same bounds).
- ``ssa_core``: ``scale * q k^T v`` per head in either official ordering, the eager attention core that the
  blocks' ``_attention_core`` methods call.
- ``fused_attention_lif`` / ``split_heads_view`` / ``merge_heads_view``: what ``_attention_core`` needs to call
  the fused attention ops of ``snnkernels.functional`` (docs/spiking_transformers.md "The attention core").
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.neuron import LIFNode, ParametricLIFNode

__all__ = [
    "SPIKE_MODES",
    "lif_node",
    "plif_node",
    "spike_node",
    "per_step",
    "heads",
    "merge_heads",
    "init_linear_layernorm",
    "ssa_core",
    "FUSED_ATTENTION_BACKENDS",
    "fused_attention_lif",
    "split_heads_view",
    "merge_heads_view",
]

SPIKE_MODES = ("lif", "plif")


def lif_node(backend: str, v_threshold: float = 1.0) -> LIFNode:
    """``MultiStepLIFNode(tau=2.0, v_threshold=v_threshold, detach_reset=True)``: hard reset to 0, input decayed,
    surrogate Sigmoid(alpha=4), every forward starting from rest (the official loops call ``reset_net``)."""
    return LIFNode(tau=2.0, v_threshold=v_threshold, detach_reset=True, step_mode="m", backend=backend, stateful=False)


def plif_node(backend: str, v_threshold: float = 1.0) -> ParametricLIFNode:
    """``MultiStepParametricLIFNode(init_tau=2.0, v_threshold=v_threshold, detach_reset=True)``: the learned
    rate ``sigmoid(w)`` under the official key ``w``."""
    return ParametricLIFNode(
        init_tau=2.0, v_threshold=v_threshold, detach_reset=True, step_mode="m", backend=backend, stateful=False
    )


def spike_node(spike_mode: str, backend: str, v_threshold: float = 1.0) -> LIFNode | ParametricLIFNode:
    """The neuron of Spike-Driven Transformer's ``spike_mode`` ("lif" or "plif")."""
    if spike_mode == "lif":
        return lif_node(backend, v_threshold)
    if spike_mode == "plif":
        return plif_node(backend, v_threshold)
    raise ValueError(
        f"spike_mode must be one of {SPIKE_MODES} (the modes the released blocks build), got {spike_mode!r}"
    )


def per_step(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module`` on [T * B, ...], the result reshaped back to [T, B, ...]."""
    y = module(x.flatten(0, 1))
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


def heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[T, B, C, N] -> [T, B, heads, N, C // heads] (head h owns channels h * d ... h * d + d - 1)."""
    T, B, C, N = x.shape
    return x.transpose(-1, -2).reshape(T, B, N, num_heads, C // num_heads).permute(0, 1, 3, 2, 4)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[T, B, heads, N, d] -> [T, B, heads * d, N]."""
    T, B, h, N, d = x.shape
    return x.transpose(3, 4).reshape(T, B, h * d, N)


def init_linear_layernorm(m: nn.Module) -> None:
    """Linear weights truncated normal (std .02, cut at +-2), Linear biases 0, LayerNorm weight 1 / bias 0."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)


def ssa_core(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, scale: float, order: str
) -> torch.Tensor:
    """``scale * q k^T v`` per head on spikes [T, B, C, N], returned as [T, B, C, N] (before the attention LIF).

    ``order`` is the official one: ``"qk_scale_v"`` (``((q k^T) * scale) v``, Spikformer CIFAR),
    ``"qk_v_scale"`` (``((q k^T) v) * scale``, Spikingformer) or ``"kv_q_scale"`` (``(q (k^T v)) * scale``, the
    ImageNet models, Meta-SpikeFormer, QKFormer). On 0/1 spikes every order gives the same exact integers times a
    power of two (docs/spiking_transformers.md "Orderings"); the backward's real-valued products follow the order.
    """
    qh, kh, vh = heads(q, num_heads), heads(k, num_heads), heads(v, num_heads)
    if order == "qk_scale_v":
        out = ((qh @ kh.transpose(-2, -1)) * scale) @ vh
    elif order == "qk_v_scale":
        out = ((qh @ kh.transpose(-2, -1)) @ vh) * scale
    elif order == "kv_q_scale":
        out = (qh @ (kh.transpose(-2, -1) @ vh)) * scale
    else:
        raise ValueError(f"unknown SSA order {order!r}")
    return merge_heads(out)


# The module backends whose attention goes through the fused ops of snnkernels.functional (which resolve "auto");
# "torch" keeps the eager official ordering, "native" / "cupy" have no fused attention (eager core, their LIF).
FUSED_ATTENTION_BACKENDS = ("auto", "triton")


def fused_attention_lif(lif: nn.Module) -> dict | None:
    """The LIF keywords (and ``backend``) of ``snnkernels.functional``'s attention ops reproducing ``lif``, or
    None where the eager core must stay: a backend outside ``FUSED_ATTENTION_BACKENDS``, a learnable tau (PLIF),
    a strict threshold or a start away from rest, which the fused ops do not model."""
    if type(lif) is not LIFNode or lif.backend not in FUSED_ATTENTION_BACKENDS:
        return None
    if lif.strict_threshold or lif.stateful or lif.step_mode != "m" or lif.v_init_value != (lif.v_reset or 0.0):
        return None
    return dict(
        tau=lif.tau,
        v_threshold=float(lif.v_threshold),
        v_reset=lif.v_reset,
        decay_input=lif.decay_input,
        detach_reset=lif.detach_reset,
        surrogate_function=lif.surrogate_function,
        backend=lif.backend,
    )


def split_heads_view(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[T, B, C, N] (any strides whose C dim can be split) -> the view [T, B, heads, N, d], no copy."""
    T, B, C, N = x.shape
    return x.view(T, B, num_heads, C // num_heads, N).transpose(-1, -2)


def merge_heads_view(x: torch.Tensor) -> torch.Tensor:
    """[T, B, heads, N, d] -> [T, B, heads * d, N] (a view when ``x`` came from ``split_heads_view``'s layout)."""
    T, B, h, N, d = x.shape
    return x.transpose(-1, -2).reshape(T, B, h * d, N)
