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
