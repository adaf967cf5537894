"""Meta-SpikeFormer / Spike-Driven Transformer v2 (Yao et al., ICLR 2024), official-weight compatible
(docs/spiking_transformers.md "Meta-SpikeFormer").

Source of the facts: BICLab/Spike-Driven-Transformer-V2 @ 35f245f, ``classification/models.py``
(``Spiking_vit_MetaFormer`` and its ``metaspikformer_8_384 / _8_512 / _8_768`` factories). Two conv stages of
separable-conv blocks, then 6 + 2 transformer blocks whose q, k, v come from re-parameterisable convolutions
(``RepConv``) and whose attention is ``attn_lif((q (k^T v)) * 0.125)``. ``T`` is an attribute (1 after
construction, as the official pre-training; the fine-tuning script sets ``model.T = 4``). Same parameter names,
creation order and initialisation as the official classes; neurons ``lif_node`` on ``backend``.

``MS_Attention_RepConv_qkv_id._attention_core(q, k, v)``: the attention with its LIF on spikes [T, B, C, N], the
one call a fused SSA op replaces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .transformer_blocks import (
    HeadedAttention,
    ResidualBlock,
    add_mlp_layers,
    block_list,
    classifier_head,
    drop_path_schedule,
    init_linear_layernorm,
    lif_conv_bn,
    lif_node,
    per_step,
    pointwise_conv,
)

__all__ = [
    "Spiking_vit_MetaFormer",
    "metaspikformer_8_384",
    "metaspikformer_8_512",
    "metaspikformer_8_768",
    "MS_Attention_RepConv_qkv_id",
    "MS_Block",
    "MS_ConvBlock",
]


def _of_bn(name: str) -> property:
    """A read-only attribute of ``BNAndPadLayer`` taken from its inner ``bn`` (the official properties)."""
    return property(lambda self: getattr(self.bn, name))


class BNAndPadLayer(nn.Module):
    """BatchNorm2d, then a border of ``pad_pixels`` filled with what the BN gives a zero input (from the running
    statistics and the detached affine parameters), so a following unpadded 3x3 conv sees a zero-padded input."""

    def __init__(self, pad_pixels, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps, momentum, affine, track_running_stats)
        self.pad_pixels = pad_pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        p = self.pad_pixels
        if p <= 0:
            return out
        bn = self.bn
        if bn.affine:
            zero = bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        else:
            zero = -bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
        N, C, H, W = out.shape
        full = zero.to(out.dtype).view(1, C, 1, 1).expand(N, C, H + 2 * p, W + 2 * p).clone()
        full[:, :, p : p + H, p : p + W] = out
        return full

    weight = _of_bn("weight")
    bias = _of_bn("bias")
    running_mean = _of_bn("running_mean")
    running_var = _of_bn("running_var")
    eps = _of_bn("eps")


class RepConv(nn.Module):
    """``body``: 1x1 conv -> BN + pad -> (depthwise 3x3, 1x1 conv, BN)."""

    def __init__(self, in_channel, out_channel, bias=False):
        super().__init__()
        conv1x1 = nn.Conv2d(in_channel, in_channel, 1, 1, 0, bias=False, groups=1)
        bn = BNAndPadLayer(pad_pixels=1, num_features=in_channel)
        conv3x3 = nn.Sequential(
            nn.Conv2d(in_channel, in_channel, 3, 1, 0, groups=in_channel, bias=False),
            nn.Conv2d(in_channel, out_channel, 1, 1, 0, groups=1, bias=False),
            nn.BatchNorm2d(out_channel),
        )
        self.body = nn.Sequential(conv1x1, bn, conv3x3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConv(nn.Module):
    """LIF -> 1x1 conv (x2 channels) -> BN -> LIF -> depthwise 7x7 -> 1x1 conv -> BN."""

    def __init__(
        self, dim, expansion_ratio=2, act2_layer=nn.Identity, bias=False, kernel_size=7, padding=3, *, backend="auto"
    ):
        super().__init__()
        med_channels = int(expansion_ratio * dim)
        self.lif1 = lif_node(backend)
        self.pwconv1 = nn.Conv2d(dim, med_channels, kernel_size=1, stride=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(med_channels)
        self.lif2 = lif_node(backend)
        self.dwconv = nn.Conv2d(
            med_channels, med_channels, kernel_size=kernel_size, padding=padding, groups=med_channels, bias=bias
        )
        self.pwconv2 = nn.Conv2d(med_channels, dim, kernel_size=1, stride=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = per_step(self.bn1, per_step(self.pwconv1, self.lif1(x)))
        x = per_step(self.dwconv, self.lif2(x))
        return per_step(self.bn2, per_step(self.pwconv2, x))


class MS_ConvBlock(nn.Module):  # official class name
    """``x + SepConv(x)``, then ``+ BN(conv3x3(LIF(BN(conv3x3(LIF(.))))))`` (hidden ``dim * mlp_ratio``)."""

    def __init__(self, dim, mlp_ratio=4.0, *, backend="auto"):
        super().__init__()
        self.Conv = SepConv(dim=dim, backend=backend)
        self.lif1 = lif_node(backend)
        self.conv1 = nn.Conv2d(dim, dim * mlp_ratio, kernel_size=3, padding=1, groups=1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim * mlp_ratio)
        self.lif2 = lif_node(backend)
        self.conv2 = nn.Conv2d(dim * mlp_ratio, dim, kernel_size=3, padding=1, groups=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv(x) + x
        feat = x
        x = per_step(self.bn1, per_step(self.conv1, self.lif1(x)))
        x = per_step(self.bn2, per_step(self.conv2, self.lif2(x)))
        return feat + x


class MS_MLP(nn.Module):  # official class name
    """LIF -> 1x1 Conv1d -> BN, twice, on the tokens of [T, B, C, H, W]."""

    def __init__(self, in_features, hidden_features=None, out_features=None, drop=0.0, layer=0, *, backend="auto"):
        super().__init__()
        add_mlp_layers(
            self, ("fc1", "fc2"), in_features, hidden_features, out_features, pointwise_conv(nn.Conv1d),
            nn.BatchNorm1d, lambda: lif_node(backend),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_conv_bn(self, "fc2", lif_conv_bn(self, "fc1", x.flatten(3))).reshape(x.shape)


class MS_Attention_RepConv_qkv_id(HeadedAttention):  # official class name
    """``head_lif``, then RepConv + BN + LIF for q, k, v, ``attn_lif((q (k^T v)) * 0.125)``, RepConv + BN."""

    order = "kv_q_scale"

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
        backend="auto",
    ):
        super().__init__(dim, num_heads)
        self.head_lif = lif_node(backend)
        self.q_conv = nn.Sequential(RepConv(dim, dim, bias=False), nn.BatchNorm2d(dim))
        self.k_conv = nn.Sequential(RepConv(dim, dim, bias=False), nn.BatchNorm2d(dim))
        self.v_conv = nn.Sequential(RepConv(dim, dim, bias=False), nn.BatchNorm2d(dim))
        self.q_lif = lif_node(backend)
        self.k_lif = lif_node(backend)
        self.v_lif = lif_node(backend)
        self.attn_lif = lif_node(backend, v_threshold=0.5)
        self.proj_conv = nn.Sequential(RepConv(dim, dim, bias=False), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = self.head_lif(x)
        q, k, v = (per_step(getattr(self, f"{n}_conv"), x) for n in ("q", "k", "v"))
        q, k, v = self.q_lif(q).flatten(3), self.k_lif(k).flatten(3), self.v_lif(v).flatten(3)
        x = self._attention_core(q, k, v).reshape(shape)
        return per_step(self.proj_conv, x)


class MS_Block(ResidualBlock):  # official class name
    """``x + attn(x)``, then ``x + mlp(x)`` (no LayerNorms in the official block)."""

    attention_cls = MS_Attention_RepConv_qkv_id
    mlp_cls = MS_MLP
    norms = False


class MS_DownSampling(nn.Module):  # official class name
    """[LIF ->] strided conv -> BN (no LIF in the first layer: it sees the image)."""

    def __init__(
        self, in_channels=2, embed_dims=256, kernel_size=3, stride=2, padding=1, first_layer=True, *, backend="auto"
    ):
        super().__init__()
        self.encode_conv = nn.Conv2d(in_channels, embed_dims, kernel_size=kernel_size, stride=stride, padding=padding)
        self.encode_bn = nn.BatchNorm2d(embed_dims)
        if not first_layer:
            self.encode_lif = lif_node(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "encode_lif"):
            x = self.encode_lif(x)
        return per_step(self.encode_bn, per_step(self.encode_conv, x))


class Spiking_vit_MetaFormer(nn.Module):  # official class name
    """Meta-SpikeFormer: images [B, C, H, W] repeated over ``self.T`` steps (1 after construction, as the
    official code; set ``model.T``) -> logits [B, num_classes] (``kd``: two heads, as the official model).

    Args:
        img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dim, num_heads, mlp_ratios,
        qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, depths, sr_ratios, kd:
            the official keywords (``embed_dim``: four widths; ``mlp_ratios`` an int; ``depths`` >= 6 sizes the
            drop-path schedule only: the official network always has 6 + 2 transformer blocks).
        backend (str, Optional): backend of every neuron. Default: "auto".
    """

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        patch_size: int | tuple[int, int] = 16,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dim: Sequence[int] = (64, 128, 256, 360),
        num_heads: int = 8,
        mlp_ratios: int = 4,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        depths: int = 8,
        sr_ratios: int = 1,
        kd: bool = False,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.depths = depths
        self.T = 1
        self.backend = backend
        dpr = drop_path_schedule(drop_path_rate, depths)
        e = embed_dim
        opts = (num_heads, mlp_ratios, qkv_bias, qk_scale, drop_rate, attn_drop_rate, norm_layer, sr_ratios)

        def down(cin, cout, k, s, p, first=False):
            return MS_DownSampling(cin, cout, k, s, p, first, backend=backend)

        def conv_blocks(dim):
            return nn.ModuleList([MS_ConvBlock(dim=dim, mlp_ratio=mlp_ratios, backend=backend)])

        def blocks(dim, n):
            return block_list(MS_Block, [dpr[j] for j in range(n)], dim, *opts, backend=backend)

        self.downsample1_1 = down(in_channels, e[0] // 2, 7, 2, 3, first=True)
        self.ConvBlock1_1 = conv_blocks(e[0] // 2)
        self.downsample1_2 = down(e[0] // 2, e[0], 3, 2, 1)
        self.ConvBlock1_2 = conv_blocks(e[0])
        self.downsample2 = down(e[0], e[1], 3, 2, 1)
        self.ConvBlock2_1 = conv_blocks(e[1])
        self.ConvBlock2_2 = conv_blocks(e[1])
        self.downsample3 = down(e[1], e[2], 3, 2, 1)
        self.block3 = blocks(e[2], 6)
        self.downsample4 = down(e[2], e[3], 3, 1, 1)
        self.block4 = blocks(e[3], 2)
        self.lif = lif_node(backend)
        self.head = classifier_head(e[3], num_classes)
        self.kd = kd
        if kd:
            self.head_kd = classifier_head(e[3], num_classes)
        self.apply(init_linear_layernorm)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        stages = (
            (self.downsample1_1, self.ConvBlock1_1),
            (self.downsample1_2, self.ConvBlock1_2),
            (self.downsample2, [*self.ConvBlock2_1, *self.ConvBlock2_2]),
            (self.downsample3, self.block3),
            (self.downsample4, self.block4),
        )
        for down, stage in stages:
            x = down(x)
            for blk in stage:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x_lif = self.lif(self.forward_features(x).flatten(3).mean(3))
        x = self.head(x_lif).mean(0)
        if not self.kd:
            return x
        x_kd = self.head_kd(x_lif).mean(0)
        return (x, x_kd) if self.training else (x + x_kd) / 2


def _factory(widths: tuple[int, int, int, int]):
    fixed = dict(
        img_size_h=224,
        img_size_w=224,
        patch_size=16,
        embed_dim=list(widths),
        num_heads=8,
        mlp_ratios=4,
        in_channels=3,
        num_classes=1000,
        qkv_bias=False,
        depths=8,
        sr_ratios=1,
    )

    def factory(**kwargs) -> Spiking_vit_MetaFormer:
        clash = sorted(set(fixed) & set(kwargs))
        if clash:  # the official factories raise a TypeError for these too (keyword given twice)
            raise TypeError(f"metaspikformer_8_{widths[2]}() fixes {clash}")
        return Spiking_vit_MetaFormer(**fixed, **kwargs)

    factory.__name__ = factory.__qualname__ = f"metaspikformer_8_{widths[2]}"
    factory.__doc__ = f"The official ``metaspikformer_8_{widths[2]}(**kwargs)``: widths {list(widths)}, 8 heads."
    return factory


metaspikformer_8_384 = _factory((96, 192, 384, 480))
metaspikformer_8_512 = _factory((128, 256, 512, 640))
metaspikformer_8_768 = _factory((192, 384, 768, 960))
