"""Bytes held for backward by whole spiking transformers: official-style eager vs ours on the fused backend.

    TRITON_INTERPRET=1 python -m bench.transformer_network_memory [--networks spikformer_cifar ...] [--B 1 2]

Each network of ``snnkernels.models`` at its paper's setting (``NETWORKS``: embed, depth, heads, T, input),
counted as ``bench.transformer_block_memory`` counts one block (docs/spiking_transformers.md "Bytes held for
backward"): ``official`` = the network on ``backend="torch"`` with every neuron a ``CupyLikeLIFNode`` (what
SpikingJelly 0.0.0.0.x's CuPy ``MultiStepLIFNode`` keeps, ``v_seq`` included); ``fused`` = ``backend="triton"``
(Triton's interpreter on the CPU). Same weights (``firing_weights``), same images; output and every gradient
(input included) checked equal before counting. Held bytes are linear in the batch: each network is run at
every ``--B`` so the table shows the ratio fused / official at each. Writes
``bench/results/<date>_<machine>_transformer-network-bytes.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench.memory import RESULTS
from bench.transformer_block_memory import assert_same, count, firing_weights, grad_scale, official_style, table
from bench.utils import cpu_name
from snnkernels import models as M


@dataclass(frozen=True)
class Net:
    build: Callable[..., nn.Module]  # (backend, embed, depth, heads, T, img) -> the network
    call: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    embed: int
    depth: int
    heads: int
    T: int
    img: int
    setting: str


def _cifar(cls: type, **extra) -> Callable[..., nn.Module]:
    def build(backend: str, embed: int, depth: int, heads: int, T: int, img: int) -> nn.Module:
        return cls(
            img_size_h=img, img_size_w=img, patch_size=4, in_channels=3, num_classes=10, embed_dims=embed,
            num_heads=heads, mlp_ratios=4, depths=depth, T=T, backend=backend, **extra,
        )  # fmt: skip

    return build


def _spikformer_imagenet(backend: str, embed: int, depth: int, heads: int, T: int, img: int) -> nn.Module:
    assert T == M.SpikformerImageNet.T_FIXED, "SpikformerImageNet fixes T = 4"
    return M.SpikformerImageNet(
        img_size_h=img, img_size_w=img, patch_size=16, in_channels=3, num_classes=1000, embed_dims=embed,
        num_heads=heads, mlp_ratios=4, depths=depth, backend=backend,
    )  # fmt: skip


def _meta(backend: str, embed: int, depth: int, heads: int, T: int, img: int) -> nn.Module:
    # metaspikformer_8_384's widths (96, 192, 384, 480) scale with embed = the third width
    widths = [embed // 4, embed // 2, embed, embed * 5 // 4]
    model = M.Spiking_vit_MetaFormer(
        img_size_h=img, img_size_w=img, patch_size=16, in_channels=3, num_classes=1000, embed_dim=widths,
        num_heads=heads, mlp_ratios=4, depths=max(depth, 8), backend=backend,
    )  # fmt: skip
    model.T = T
    return model


def _qkformer_imagenet(backend: str, embed: int, depth: int, heads: int, T: int, img: int) -> nn.Module:
    return M.hierarchical_spiking_transformer(
        T=T, img_size_h=img, img_size_w=img, patch_size=16, in_channels=3, num_classes=1000, embed_dims=embed,
        num_heads=heads, mlp_ratios=4, depths=depth, backend=backend,
    )  # fmt: skip


def _logits(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m(x)


def _first(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m(x)[0]


NETWORKS: dict[str, Net] = {
    "spikformer_cifar": Net(_cifar(M.Spikformer), _logits, 384, 4, 12, 4, 32, "Spikformer-4-384, CIFAR-10 32x32"),
    "spikingformer_cifar": Net(
        _cifar(M.Spikingformer), _logits, 384, 4, 12, 4, 32, "Spikingformer-4-384, CIFAR-10 32x32"
    ),
    "sdt_v1_cifar": Net(
        _cifar(M.SpikeDrivenTransformer, pooling_stat="0011"),
        _first,
        512,
        2,
        8,
        4,
        32,
        "Spike-Driven Transformer 2-512, CIFAR-10 32x32 (conf/cifar10/2_512_300E_t4.yml: pooling_stat 0011)",
    ),
    "qkformer_cifar": Net(_cifar(M.QKFormer), _logits, 384, 4, 8, 4, 32, "QKFormer-4-384, CIFAR-10 32x32"),
    "meta_spikformer_15m": Net(_meta, _logits, 384, 8, 8, 1, 224, "metaspikformer_8_384 (15M), ImageNet, T = 1"),
    "spikformer_imagenet": Net(
        _spikformer_imagenet, _logits, 512, 8, 8, 4, 224, "Spikformer-8-512 (SpikformerImageNet), ImageNet"
    ),
    "qkformer_imagenet": Net(_qkformer_imagenet, _logits, 384, 10, 6, 4, 224, "QKFormer_10_384 (16M), ImageNet"),
}


def compare(name: str, official: nn.Module, call: Callable, x: torch.Tensor, off: list, fus: list) -> dict:
    """``assert_same`` on the two sides' (output, gradients). Where it fails (a spike flips on a float32
    rounding difference, and in a deep network that changes what follows), both are compared with the
    official network run in float64: the fused side equal to it (``assert_same``) and the official float32
    side not = the official side's rounding flipped the spike (docs/spiking_transformers.md "Bytes held for
    backward")."""
    try:
        assert_same(name, off, fus)
        return {"equal": True}
    except AssertionError as exc:
        first = str(exc).strip().splitlines()[0]
    out64, g64 = count(copy.deepcopy(official).double(), call, x.double())[1:]
    ref = [out64.float(), {n: g.float() for n, g in g64.items()}]
    try:
        assert_same(name, ref, fus)
        fused_equal_float64 = True
    except AssertionError:
        fused_equal_float64 = False
    return {
        "equal": False,
        "first_mismatch": first,
        "fused_equal_to_official_float64": fused_equal_float64,
        "fused_vs_float64": _differences(ref, fus),
        "official_vs_float64": _differences(ref, off),
    }


def _differences(a: list, b: list) -> dict[str, float]:
    """Largest |output difference| and, over every gradient, the largest |difference| / ``grad_scale``."""
    rel = max((b[1][n] - g).abs().max().item() / grad_scale(a[1], n) for n, g in a[1].items())
    return {"output": (b[0] - a[0]).abs().max().item(), "gradient_rel": rel}


def measure_network(name: str, B: int, **override: int) -> dict:
    """One network (``NETWORKS[name]``, with ``override`` of embed / depth / heads / T / img) at batch ``B``:
    official-style and fused bytes by kind, checked equal outputs and gradients first."""
    net = NETWORKS[name]
    cfg = {k: override.get(k, getattr(net, k)) for k in ("embed", "depth", "heads", "T", "img")}
    torch.manual_seed(0)
    fused = firing_weights(net.build("triton", **cfg))
    official = official_style(net.build("torch", **cfg))
    official.load_state_dict(fused.state_dict(), strict=True)
    x = torch.rand((B, 3, cfg["img"], cfg["img"]), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    c_off, *off = count(official, net.call, x)
    c_fus, *fus = count(fused, net.call, x)
    check = compare(name, official, net.call, x, off, fus)
    setting = net.setting if not override else f"{net.setting}, changed: {override}"
    return {
        "network": name,
        "setting": setting,
        **cfg,
        "B": B,
        "params_M": round(sum(p.numel() for p in fused.parameters()) / 1e6, 2),
        "official": c_off,
        "fused": c_fus,
        "fused_backend": "triton",
        "ratio": c_fus["total"] / c_off["total"],
        "check": check,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _check(r: dict) -> str:
    c = r["check"]
    if c["equal"]:
        return "equal"
    f, o = c["fused_vs_float64"], c["official_vs_float64"]
    verdict = "fused = official in float64" if c["fused_equal_to_official_float64"] else "fused != float64 too"
    return (
        f"differ; {verdict} (vs float64: fused {f['output']:.2g} / {f['gradient_rel']:.2g}, "
        f"official {o['output']:.2g} / {o['gradient_rel']:.2g})"
    )


def markdown(rows: list[dict], commands: list[str]) -> str:
    columns = [("network", "network"), ("params (M)", "params_M"), ("embed-depth", "shape"), ("T", "T")]
    columns += [("input", "input"), ("B", "B")]
    columns += [("output, gradients vs official", "check_text")]
    shown = [
        {**r, "shape": f"{r['embed']}-{r['depth']}", "input": f"{r['img']}x{r['img']}", "check_text": _check(r)}
        for r in rows
    ]
    lines = [
        f"# Bytes held for backward, whole networks (MiB), {cpu_name()}",
        "",
        "; ".join(f"`{c}`" for c in commands) + f" (in this order; a later command's rows replace an earlier one's of "
        f"the same network and B); torch {torch.__version__}.",
        "official = our backend='torch' network with CuPy-MultiStepLIFNode-like",
        "neurons (h_seq + spike_seq saved, v_seq held); fused = backend='triton' (interpreter). Outputs and every",
        "gradient (input included) compared (float32 rounding); where they differ, both are compared with the official",
        "network run in float64 (largest output difference / largest gradient difference over that gradient's largest",
        "entry). Each B is a measured run.",
        "",
        *table(shown, columns),
        "",
        "Settings: " + "; ".join(dict.fromkeys(f"{r['network']}: {r['setting']}" for r in rows)) + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    ap.add_argument("--B", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--img", type=int, default=None, help="input side for every network (default: its paper's)")
    ap.add_argument("--depth", type=int, default=None, help="depth for every network (default: its paper's)")
    ap.add_argument(
        "--out", default=None, help="results stem (default: bench/results/<date>_<machine>_transformer-network-bytes)"
    )
    ap.add_argument(
        "--append",
        action="store_true",
        help="add the rows to the results file's (replacing its rows of the same network and B)",
    )
    args = ap.parse_args(argv)
    override = {k: v for k, v in (("img", args.img), ("depth", args.depth)) if v is not None}
    rows = []
    for name in args.networks:
        for B in args.B:
            r = measure_network(name, B, **override)
            print(
                f"{name} B={B}: official {r['official']['total']} B, fused {r['fused']['total']} B, "
                f"ratio {r['ratio']:.4f} ({r['seconds']} s)",
                flush=True,
            )
            rows.append(r)
    date = datetime.date.today().isoformat()
    stem = Path(args.out) if args.out else RESULTS / f"{date}_cpu-{platform.machine()}_transformer-network-bytes"
    cmd = "TRITON_INTERPRET=1 python -m bench.transformer_network_memory " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    commands = [cmd.strip()]
    if args.append and stem.with_suffix(".json").exists():
        before = json.loads(stem.with_suffix(".json").read_text())
        new = {(r["network"], r["B"]) for r in rows}
        rows = [r for r in before["rows"] if (r["network"], r["B"]) not in new] + rows
        commands = before["commands"] + commands
    rows.sort(key=lambda r: (list(NETWORKS).index(r["network"]), r["B"]))
    stem.with_suffix(".json").write_text(
        json.dumps({"commands": commands, "torch": torch.__version__, "rows": rows}, indent=1)
    )
    stem.with_suffix(".md").write_text(markdown(rows, commands))
    print(markdown(rows, commands))


if __name__ == "__main__":
    main()
