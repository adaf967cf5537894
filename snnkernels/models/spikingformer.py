"""Spikingformer (Zhou et al., 2023), official-weight compatible (docs/spiking_transformers.md "Spikingformer").

Source of the facts: zhouchenlin2096/Spikingformer @ 4378623, ``cifar10/model.py`` (class ``vit_snn`` behind
the ``Spikingformer`` registry entry; here the class is ``Spikingformer``, ``vit_snn`` its alias). The
"spike-driven residual": every Conv + BN is preceded by a LIF, so the
residual stream carries real values (BN outputs) and the blocks fire at their inputs. The attention is
``((q k^T) v) * 0.125`` with an N x N map. Same parameter names, creation order and initialisation as the
official classes (the unused ``norm1`` / ``norm2`` LayerNorms kept), neurons ``lif_node`` on ``backend``.

``SpikingSelfAttention._attention_core(q, k, v)`` is the attention with its LIF on spikes [T, B, C, N]: the one
call a fused SSA op replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .transformer_blocks import (
    HeadedAttention,
    RepeatedImageClassifier,
    ResidualBlock,
    add_conv_bn_lif,
    add_mlp_layers,
    conv_bn_lif,
    lif_conv_bn,
    lif_node,
    patch_geometry,
    per_step,
    pointwise_conv,
    qkv_layers,
)

__all__ = ["Spikingformer", "vit_snn", "SpikingSelfAttention", "SpikingTransformer", "SpikingTokenizer"]


class MLP(nn.Module):
    """LIF -> 1x1 Conv2d -> BN, twice, on [T, B, C, H, W]."""

    def __init__(self, in_features, hidden_features=None, out_features=None, drop=0.0, *, backend: str = "auto"):
        super().__init__()
        add_mlp_layers(
            self, ("mlp1", "mlp2"), in_features, hidden_features, out_features, pointwise_conv(nn.Conv2d),
            nn.BatchNorm2d, lambda: lif_node(backend), lif_first=True,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_conv_bn(self, "mlp2", lif_conv_bn(self, "mlp1", x))


class SpikingSelfAttention(HeadedAttention):
    """LIF first, then 1x1 Conv1d + BN + LIF for q, k, v, ``attn_lif(((q k^T) v) * 0.125)``, proj Conv + BN."""

    order = "qk_v_scale"

    def __init__(
        self,
        dim,
        num_heads=8,
        qkv_bias=False,
        qk_scale=None,
        attn_drop=0.0,
        proj_drop=0.0,
        sr_ratio=1,
        *,
        backend: str = "auto",
    ):
        super().__init__(dim, num_heads)
        self.proj_lif = lif_node(backend)
        add_conv_bn_lif(self, ("q", "k", "v"), *qkv_layers(dim, backend))
        self.attn_lif = lif_node(backend, v_threshold=0.5)
        self.proj_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = self.proj_lif(x).flatten(3)
        q, k, v = (conv_bn_lif(self, n, x) for n in ("q", "k", "v"))
        x = self._attention_core(q, k, v)
        return per_step(self.proj_bn, per_step(self.proj_conv, x)).reshape(shape)


class SpikingTransformer(ResidualBlock):
    """``x + attn(x)``, then ``x + mlp(x)`` on [T, B, C, H, W]; ``norm1`` / ``norm2`` built, not applied."""

    attention_cls = SpikingSelfAttention
    mlp_cls = MLP


class SpikingTokenizer(nn.Module):
    """Conv + BN, then four (LIF [-> max pool] -> 3x3 Conv -> BN) stages, 4x down; returns ``(x, (H', W'))``."""

    def __init__(self, img_size_h=128, img_size_w=128, patch_size=4, in_channels=2, embed_dims=256, *, backend="auto"):
        super().__init__()
        patch_geometry(self, img_size_h, img_size_w, patch_size, in_channels)
        widths = [in_channels, embed_dims // 8, embed_dims // 4, embed_dims // 2, embed_dims, embed_dims]
        for i in range(5):
            if i > 0:
                setattr(self, f"block{i}_lif", lif_node(backend))
            if i >= 3:
                setattr(self, f"block{i}_mp", nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1))
            setattr(self, f"block{i}_conv", nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1, bias=False))
            setattr(self, f"block{i}_bn", nn.BatchNorm2d(widths[i + 1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        H, W = x.shape[-2:]
        for i in range(5):
            if i > 0:
                x = getattr(self, f"block{i}_lif")(x)
            if i >= 3:
                x = per_step(getattr(self, f"block{i}_mp"), x)
            x = per_step(getattr(self, f"block{i}_bn"), per_step(getattr(self, f"block{i}_conv"), x))
        return x, (H // self.patch_size[0], W // self.patch_size[1])


class Spikingformer(RepeatedImageClassifier):
    """Spikingformer (official class ``vit_snn``, also importable under that name): images [B, C, H, W]
    repeated over ``T`` steps -> logits [B, num_classes].

    Args:
        img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dims, num_heads, mlp_ratios,
        qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, depths, sr_ratios, T,
        pretrained_cfg: the official keywords (scalars; dropout and drop path are never applied there).
        backend (str, Optional): backend of every neuron. Default: "auto".
    """

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        patch_size: int | tuple[int, int] = 16,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dims: int = 384,
        num_heads: int = 12,
        mlp_ratios: int = 4,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        depths: int = 4,
        sr_ratios: int = 1,
        T: int = 4,
        pretrained_cfg: object = None,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        opts = (embed_dims, num_heads, mlp_ratios, qkv_bias, qk_scale, drop_rate, attn_drop_rate, norm_layer, sr_ratios)
        patch_embed = SpikingTokenizer(img_size_h, img_size_w, patch_size, in_channels, embed_dims, backend=backend)
        self._build_trunk(patch_embed, SpikingTransformer, opts, num_classes, depths, drop_path_rate, T, backend)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.flatten(3).mean(3)


vit_snn = Spikingformer  # the official class name
