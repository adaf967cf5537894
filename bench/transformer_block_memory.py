"""Bytes held for backward by one spiking-transformer block: official-style eager vs ours on the fused backend.

    TRITON_INTERPRET=1 python -m bench.transformer_block_memory [--B 2] [--blocks spikformer sdt qkformer_token ...]

One block of each network at embed 512, 8 heads, T = 4, 64 tokens (CIFAR 32 x 32 after the 4x patch split),
counted by ``bench.memory.SavedTensorCensus`` (every storage autograd saves in one training-mode forward, each
once, parameters and buffers excluded, by kind), docs/spiking_transformers.md "Bytes held for backward".

- ``official``: our block on ``backend="torch"`` with every neuron replaced by ``CupyLikeLIFNode``, which keeps
  what SpikingJelly 0.0.0.0.x's CuPy ``MultiStepLIFNode`` keeps: its autograd function saves ``h_seq`` and
  ``spike_seq`` and the module holds ``v_seq`` (``self.v_seq``) until ``reset_net``, after the backward in the
  official training loops; ``v_seq`` is added to the membranes. The rest (Linear / Conv, BN, the head split
  copies, the attention products) is the official eager code's autograd.
- ``fused``: our block on ``backend="triton"`` (Triton's interpreter on the CPU; what the kernels save is what
  they save on a GPU): the fused neurons and the fused attention op of ``_attention_core``.

Both are checked to give the same output and gradients (float32 rounding) before they are counted. Writes
``bench/results/<date>_<machine>_transformer-block-bytes.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bench.memory import KINDS, RESULTS, SavedTensorCensus
from bench.utils import cpu_name
from snnkernels import models as M
from snnkernels.nn.neuron import LIFNode


class _CupyLikeLIF(torch.autograd.Function):
    """Multi-step LIF (tau, hard reset to 0, decay_input, detach_reset, Sigmoid(4)) saving ``h_seq`` and
    ``spike_seq`` only, as SpikingJelly 0.0.0.0.x's ``MultiStepLIFNodePTT``."""

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, tau: float, v_th: float) -> tuple[torch.Tensor, torch.Tensor]:
        h_seq, v_seq, s_seq = torch.empty_like(x_seq), torch.empty_like(x_seq), torch.empty_like(x_seq)
        v = torch.zeros_like(x_seq[0])
        for t in range(x_seq.shape[0]):
            h = v + (x_seq[t] - v) / tau
            s = (h >= v_th).to(x_seq.dtype)
            v = h * (1 - s)
            h_seq[t], s_seq[t], v_seq[t] = h, s, v
        ctx.save_for_backward(h_seq, s_seq)
        ctx.tau, ctx.v_th = tau, v_th
        ctx.mark_non_differentiable(v_seq)
        return s_seq, v_seq

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor, grad_v: torch.Tensor | None):
        h_seq, s_seq = ctx.saved_tensors
        sg = torch.sigmoid(4.0 * (h_seq - ctx.v_th))
        sg = 4.0 * sg * (1 - sg)
        grad_x = torch.empty_like(h_seq)
        grad_h_next = torch.zeros_like(h_seq[0])
        for t in range(h_seq.shape[0] - 1, -1, -1):
            grad_v_t = grad_h_next * (1 - 1 / ctx.tau)
            grad_h = grad_s[t] * sg[t] + grad_v_t * (1 - s_seq[t])
            grad_x[t] = grad_h / ctx.tau
            grad_h_next = grad_h
        return grad_x, None, None


class CupyLikeLIFNode(nn.Module):
    """``MultiStepLIFNode(tau=2.0, v_threshold, detach_reset=True, backend='cupy')`` as far as memory goes."""

    backend = "cupy"  # what it stands for: the blocks take their eager (unfused) paths around it

    def __init__(self, tau: float, v_threshold: float) -> None:
        super().__init__()
        self.tau, self.v_threshold = tau, v_threshold
        self.v_seq: torch.Tensor | None = None

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        s, self.v_seq = _CupyLikeLIF.apply(x_seq, self.tau, float(self.v_threshold))
        return s


def official_style(block: nn.Module) -> nn.Module:
    """``block`` with every ``LIFNode`` replaced by a ``CupyLikeLIFNode`` of the same tau and threshold."""
    for name, child in list(block.named_children()):
        if isinstance(child, LIFNode):
            setattr(block, name, CupyLikeLIFNode(child.tau, child.v_threshold))
        else:
            official_style(child)
    return block


def _sdt(backend: str) -> nn.Module:
    return M.spike_driven_transformer.MS_Block_Conv(512, 8, mlp_ratio=4, backend=backend)


BLOCKS: dict[str, tuple[Callable[[str], nn.Module], str, Callable]] = {
    # name: (build(backend), input layout, call)
    "spikformer_cifar": (lambda b: M.spikformer.Block(512, 8, 4, backend=b), "TBNC", lambda m, x: m(x)),
    "sdt_v1": (_sdt, "TBCHW", lambda m, x: m(x)[0]),
    "qkformer_token": (lambda b: M.qkformer.TokenSpikingTransformer(512, 8, 4, backend=b), "TBCHW", lambda m, x: m(x)),
    "qkformer_ssa": (lambda b: M.qkformer.SpikingTransformer(512, 8, 4, backend=b), "TBCHW", lambda m, x: m(x)),
    "spikingformer": (lambda b: M.spikingformer.SpikingTransformer(512, 8, 4, backend=b), "TBCHW", lambda m, x: m(x)),
    "meta_ms_block": (lambda b: M.meta_spikformer.MS_Block(512, 8, 4, backend=b), "TBCHW", lambda m, x: m(x)),
    "meta_ms_convblock": (lambda b: M.meta_spikformer.MS_ConvBlock(512, 4, backend=b), "TBCHW", lambda m, x: m(x)),
}


def firing_weights(model: nn.Module, seed: int = 1) -> nn.Module:
    """Weights that make every LIF fire (the official init leaves the attention LIF silent on a random input):
    conv / linear ~ N(0, 2 / fan_in), BatchNorm affine weight in [0.8, 1.6], bias in [0.3, 1.2]."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(0.8 + 0.8 * torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.3 + 0.9 * torch.rand(m.bias.shape, generator=g))
    return model


def block_input(layout: str, T: int, B: int, C: int, side: int) -> torch.Tensor:
    """A block input as the previous block leaves it: a sum of two spike maps (integer-valued)."""
    g = torch.Generator().manual_seed(0)
    shape = (T, B, side * side, C) if layout == "TBNC" else (T, B, C, side, side)
    return ((torch.rand(shape, generator=g) < 0.3).float() + (torch.rand(shape, generator=g) < 0.3).float()).clone()


def count(model: nn.Module, call: Callable, x: torch.Tensor) -> tuple[dict[str, int], torch.Tensor, dict]:
    """{kind: bytes, "total"} held for the backward, plus the output and every gradient (checked by the caller)."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    census = SavedTensorCensus(exclude=[*model.parameters(), *model.buffers()])
    with census:
        out = call(model, x)
    counts = census.bytes
    held = [m.v_seq for m in model.modules() if isinstance(m, CupyLikeLIFNode) and m.v_seq is not None]
    counts["membranes"] += sum(v.untyped_storage().nbytes() for v in held)
    counts["total"] = sum(counts[k] for k in KINDS)
    census.close()
    dy = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(dy)
    grads = {"input": x.grad.clone(), **{n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}}
    return counts, out.detach(), grads


def grad_scale(grads: dict[str, torch.Tensor], name: str) -> float:
    """The largest entry of ``grads[name]``, or of any gradient of its parent module's parameters when larger: a
    parameter whose effect a following train-mode BatchNorm cancels has gradient 0 (a bias before BatchNorm) or
    almost 0 (through ``eps`` only: Meta-SpikeFormer's RepConv BatchNorm before ``q_bn``) up to rounding, judged
    on its neighbours' scale."""
    module = name.rsplit(".", 1)[0] if "." in name else None  # None: the input's gradient, judged alone
    parent = module.rsplit(".", 1)[0] + "." if module and "." in module else f"{module}."
    near = [g.abs().max().item() for n, g in grads.items() if module is not None and n.startswith(parent)]
    return max(grads[name].abs().max().item(), *near, 1e-30)


def assert_same(name: str, off: tuple[torch.Tensor, dict], fus: tuple[torch.Tensor, dict], rtol: float = 1e-4) -> None:
    """The (output, gradients) of ``count`` equal on both sides up to float32 rounding: ``rtol``, and an absolute
    ``rtol`` times each gradient's largest entry."""
    (out_off, g_off), (out_fus, g_fus) = off, fus
    torch.testing.assert_close(out_fus, out_off, rtol=rtol / 10, atol=rtol / 10)
    assert list(g_fus) == list(g_off), name
    for n, want in g_off.items():
        scale = grad_scale(g_off, n)
        torch.testing.assert_close(g_fus[n], want, rtol=rtol, atol=rtol * scale, msg=lambda m, n=n: f"{name} {n}: {m}")


def measure(name: str, T: int, B: int, side: int = 8, fused_backend: str = "triton") -> dict:
    build, layout, call = BLOCKS[name]
    torch.manual_seed(0)
    fused = firing_weights(build(fused_backend))
    official = official_style(build("torch"))
    official.load_state_dict(fused.state_dict(), strict=True)
    x = block_input(layout, T, B, 512, side)
    c_off, *off = count(official, call, x)
    c_fus, *fus = count(fused, call, x)
    assert_same(name, off, fus)
    return {
        "block": name,
        "T": T,
        "B": B,
        "C": 512,
        "heads": 8,
        "N": side * side,
        "official": c_off,
        "fused": c_fus,
        "fused_backend": fused_backend,
        "ratio": c_fus["total"] / c_off["total"],
    }


def table(rows: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    """Markdown lines: ``columns`` (header, row key), then side, the MiB of each kind, total, ratio; two lines a row
    (official, fused)."""
    mib = 2.0**20
    lines = [
        "| "
        + " | ".join(h for h, _ in columns)
        + " | side | "
        + " | ".join(KINDS)
        + " | total | ratio fused / official |",
        "|" + "---|" * (len(columns) + 3 + len(KINDS)),
    ]
    for r in rows:
        for side in ("official", "fused"):
            c = r[side]
            ratio = f"{r['ratio']:.3f}" if side == "fused" else ""
            cells = " | ".join([*(str(r[k]) for _, k in columns), side, *(f"{c[k] / mib:.2f}" for k in KINDS)])
            lines.append(f"| {cells} | {c['total'] / mib:.2f} | {ratio} |")
    return lines


def markdown(rows: list[dict], cmd: str) -> str:
    lines = [
        f"# Bytes held for backward, one block (MiB), {cpu_name()}",
        "",
        f"`{cmd}`; torch {torch.__version__}. official = our backend='torch' block with CuPy-MultiStepLIFNode-like",
        "neurons (h_seq + spike_seq saved, v_seq held); fused = backend='triton' (interpreter). Outputs and every",
        "gradient checked equal (float32 rounding) before counting.",
        "",
        *table(rows, [("block", "block"), ("T", "T"), ("B", "B"), ("N", "N")]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", nargs="+", default=list(BLOCKS), choices=list(BLOCKS))
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--B", type=int, default=2)
    ap.add_argument(
        "--out", default=None, help="results stem (default: bench/results/<date>_<machine>_transformer-block-bytes)"
    )
    args = ap.parse_args(argv)
    rows = []
    for name in args.blocks:
        r = measure(name, args.T, args.B)
        print(f"{name}: official {r['official']['total']} B, fused {r['fused']['total']} B, ratio {r['ratio']:.3f}")
        rows.append(r)
    date = datetime.date.today().isoformat()
    stem = Path(args.out) if args.out else RESULTS / f"{date}_cpu-{platform.machine()}_transformer-block-bytes"
    cmd = "TRITON_INTERPRET=1 python -m bench.transformer_block_memory " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    stem.with_suffix(".json").write_text(
        json.dumps({"command": cmd, "torch": torch.__version__, "rows": rows}, indent=1)
    )
    stem.with_suffix(".md").write_text(markdown(rows, cmd.strip()))
    print(markdown(rows, cmd.strip()))


if __name__ == "__main__":
    main()
