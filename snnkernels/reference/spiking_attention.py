"""Eager references of the spiking transformers' attention cores, docs/spiking_attention.md.

SSA (Spikformer and its successors), SDSA (Spike-Driven Transformer v1) and QKFormer's Q-K token and channel
attention, each with its own LIF over time. Plain torch (the LIF is ``multistep_lif_reference``), autograd
does the backward; fp64-capable. Inputs are ``[T, B, heads, N, d]`` with any strides. Never edit these to
match a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..surrogate import Sigmoid, Surrogate
from .leaky import multistep_lif_reference

__all__ = [
    "AttentionLIF",
    "check_heads_input",
    "spiking_self_attention_reference",
    "spike_driven_self_attention_reference",
    "qk_token_attention_reference",
    "qk_channel_attention_reference",
]


@dataclass(frozen=True)
class AttentionLIF:
    """The attention's LIF (docs/spiking_attention.md "The attention LIF"); defaults: the official attn_lif.

    Args:
        tau (float or Tensor): membrane time constant (a tensor receives a gradient). Default: 2.0.
        v_threshold (float): firing threshold (``h >= v_threshold``). Default: 0.5.
        v_reset (float, Optional): hard-reset value, None for a soft reset. Default: 0.0.
        decay_input (bool): SpikingJelly's decay_input. Default: True.
        detach_reset (bool): detach the spike in the reset. Default: True.
        surrogate_function (Surrogate): surrogate of the spike's derivative. Default: ``Sigmoid(4.0)``.
    """

    tau: float | torch.Tensor = 2.0
    v_threshold: float = 0.5
    v_reset: float | None = 0.0
    decay_input: bool = True
    detach_reset: bool = True
    surrogate_function: Surrogate = Sigmoid(4.0)  # noqa: RUF009 (surrogates are immutable)

    def __call__(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Spikes of the LIF over ``x_seq`` [T, ...], state from v_reset (0 for a soft reset)."""
        return multistep_lif_reference(
            x_seq,
            tau=self.tau,
            decay_input=self.decay_input,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            detach_reset=self.detach_reset,
            surrogate_function=self.surrogate_function,
        )


def check_heads_input(*tensors: torch.Tensor, names: str = "qkv") -> None:
    """Each tensor floating ``[T, B, heads, N, d]`` with T >= 1, all of one shape, dtype and device."""
    first = tensors[0]
    for name, x in zip(names, tensors, strict=False):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
        if x.dim() != 5 or x.shape[0] == 0:
            raise ValueError(f"{name} must have shape [T, B, heads, N, d] with T >= 1, got {list(x.shape)}")
        if x.shape != first.shape or x.dtype != first.dtype or x.device != first.device:
            raise ValueError(
                f"{name} must match {names[0]}: got {list(x.shape)} {x.dtype} {x.device}, "
                f"expected {list(first.shape)} {first.dtype} {first.device}"
            )


def spiking_self_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float = 0.125, lif: AttentionLIF = AttentionLIF()
) -> torch.Tensor:
    """SSA: ``LIF(scale * q (k^T v))`` per (t, b, head), docs/spiking_attention.md "SSA".

    Args:
        q (torch.Tensor): [T, B, heads, N, d] (binary in the models; any values here).
        k (torch.Tensor): [T, B, heads, N, d].
        v (torch.Tensor): [T, B, heads, N, d].
        scale (float): the factor on the product. Default: 0.125.
        lif (AttentionLIF): the attention LIF. Default: ``AttentionLIF()``.
    """
    check_heads_input(q, k, v)
    return lif((q @ (k.transpose(-1, -2) @ v)) * scale)


def spike_driven_self_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, lif: AttentionLIF = AttentionLIF()
) -> torch.Tensor:
    """SDSA: ``q * LIF(sum over tokens of k * v)``, docs/spiking_attention.md "SDSA" (arguments as SSA's)."""
    check_heads_input(q, k, v)
    return q * lif((k * v).sum(dim=-2, keepdim=True))


def qk_token_attention_reference(
    q: torch.Tensor, k: torch.Tensor, *, lif: AttentionLIF = AttentionLIF()
) -> torch.Tensor:
    """Q-K token attention: ``LIF(sum over the head's channels of q) * k``, docs/spiking_attention.md
    "Q-K attention" (q, k [T, B, heads, N, d])."""
    check_heads_input(q, k, names="qk")
    return lif(q.sum(dim=-1, keepdim=True)) * k


def qk_channel_attention_reference(
    q: torch.Tensor, k: torch.Tensor, *, lif: AttentionLIF = AttentionLIF()
) -> torch.Tensor:
    """Q-K channel attention: ``LIF(sum over tokens of q) * k`` (q, k [T, B, heads, N, d])."""
    check_heads_input(q, k, names="qk")
    return lif(q.sum(dim=-2, keepdim=True)) * k
