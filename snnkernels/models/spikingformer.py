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

from ..functional import spiking_self_attention
from .transformer_blocks import (
    fused_attention_lif,
    init_linear_layernorm,
    lif_node,
    merge_heads_view,
    per_step,
    split_heads_view,
    ssa_core,
)

__all__ = ["Spikingformer", "vit_snn", "SpikingSelfAttention", "SpikingTransformer", "SpikingTokenizer"]


class MLP(nn.Module):
    """LIF -> 1x1 Conv2d -> BN, twice, on [T, B, C, H, W]."""

    def __init__(self, in_features, hidden_features=None, out_features=None, drop=0.0, *, backend: str = "auto"):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.mlp1_lif = lif_node(backend)
        self.mlp1_conv = nn.Conv2d(in_features, hidden_features, kernel_size=1, stride=1)
        self.mlp1_bn = nn.BatchNorm2d(hidden_features)
        self.mlp2_lif = lif_node(backend)
        self.mlp2_conv = nn.Conv2d(hidden_features, out_features, kernel_size=1, stride=1)
        self.mlp2_bn = nn.BatchNorm2d(out_features)
        self.c_hidden = hidden_features
        self.c_output = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = per_step(self.mlp1_bn, per_step(self.mlp1_conv, self.mlp1_lif(x)))
        return per_step(self.mlp2_bn, per_step(self.mlp2_conv, self.mlp2_lif(x)))


class SpikingSelfAttention(nn.Module):
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
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} should be divided by num_heads {num_heads}.")
        self.dim = dim
        self.num_heads = num_heads
        self.scale = 0.125
        self.proj_lif = lif_node(backend)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{name}_lif", lif_node(backend))
        self.attn_lif = lif_node(backend, v_threshold=0.5)
        self.proj_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm1d(dim)

    def _attention_core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``attn_lif(((q k^T) v) * scale)`` per head on spikes [T, B, C, N] -> spikes [T, B, C, N]."""
        fused = fused_attention_lif(self.attn_lif)
        if fused is None:  # backend "torch" (the official ordering), "native", "cupy"
            return self.attn_lif(ssa_core(q, k, v, self.num_heads, self.scale, self.order))
        q, k, v = (split_heads_view(x, self.num_heads) for x in (q, k, v))
        return merge_heads_view(spiking_self_attention(q, k, v, scale=self.scale, check=False, **fused))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = self.proj_lif(x).flatten(3)
        q, k, v = (
            getattr(self, f"{n}_lif")(per_step(getattr(self, f"{n}_bn"), per_step(getattr(self, f"{n}_conv"), x)))
            for n in ("q", "k", "v")
        )
        x = self._attention_core(q, k, v)
        return per_step(self.proj_bn, per_step(self.proj_conv, x)).reshape(shape)


class SpikingTransformer(nn.Module):
    """``x + attn(x)``, then ``x + mlp(x)`` on [T, B, C, H, W]; ``norm1`` / ``norm2`` built, not applied."""

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=False,
        qk_scale=None,
        drop=0.0,
        attn_drop=0.0,
        drop_path=0.0,
        norm_layer=nn.LayerNorm,
        sr_ratio=1,
        *,
        backend: str = "auto",
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = SpikingSelfAttention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, sr_ratio, backend=backend)
        self.drop_path = nn.Identity()  # official: DropPath or Identity, never applied in the forward
        self.norm2 = norm_layer(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), drop=drop, backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SpikingTokenizer(nn.Module):
    """Conv + BN, then four (LIF [-> max pool] -> 3x3 Conv -> BN) stages, 4x down; returns ``(x, (H', W'))``."""

    def __init__(self, img_size_h=128, img_size_w=128, patch_size=4, in_channels=2, embed_dims=256, *, backend="auto"):
        super().__init__()
        self.image_size = [img_size_h, img_size_w]
        patch_size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        self.patch_size = patch_size
        self.C = in_channels
        self.H, self.W = img_size_h // patch_size[0], img_size_w // patch_size[1]
        self.num_patches = self.H * self.W
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


class Spikingformer(nn.Module):
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
        self.num_classes = num_classes
        self.depths = depths
        self.T = T
        self.backend = backend
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depths)]
        self.patch_embed = SpikingTokenizer(
            img_size_h, img_size_w, patch_size, in_channels, embed_dims, backend=backend
        )
        self.block = nn.ModuleList(
            [
                SpikingTransformer(
                    embed_dims,
                    num_heads,
                    mlp_ratios,
                    qkv_bias,
                    qk_scale,
                    drop_rate,
                    attn_drop_rate,
                    dpr[j],
                    norm_layer,
                    sr_ratios,
                    backend=backend,
                )
                for j in range(depths)
            ]
        )
        self.head = nn.Linear(embed_dims, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_linear_layernorm)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.flatten(3).mean(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        return self.head(self.forward_features(x).mean(0))


vit_snn = Spikingformer  # the official class name
