"""Bytes held for the backward by one BatchNorm + LIF layer: eager, BatchNorm + the fused neuron, and ``bn_lif``.

Measured with ``torch.autograd.graph.saved_tensors_hooks`` at the end of the forward: every tensor autograd saved
that is still alive, each storage counted once, parameters and buffers excluded. The input x (the conv output)
is counted when a layer saves it (every variant here does: BatchNorm needs it). Bytes held is a property of the
graph, the same on any device, so the CPU measures it exactly (Triton runs under its interpreter).

    TRITON_INTERPRET=1 PYTHONPATH=. python bench/bn_lif_memory.py [T B C H W]
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

from bench.memory import SavedTensorCensus
from snnkernels.nn import BNLIF, LIFNode


def saved_bytes(module: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """{kind: bytes} held for the backward by ``module(x)``: "x" (the input's storage), "steps" (other storages
    of one time step's size or more: BatchNorm's output, the eager neuron's per-step tensors, checkpoints),
    "small" (per-channel statistics and coefficients)."""
    with SavedTensorCensus(exclude=(*module.parameters(), *module.buffers())) as census:
        out = module(x)
    census.close()
    storages = {ptr: n for ptr, (_, n) in census.storages.items()}
    kinds = {"x": 0, "steps": 0, "small": 0}
    x_ptr, x_bytes = x.untyped_storage().data_ptr(), x.untyped_storage().nbytes()
    for ptr, n in storages.items():
        kinds["x" if ptr == x_ptr else "steps" if n >= x_bytes // x.shape[0] else "small"] += n
    del out
    return kinds


class Unfused(nn.Module):
    """``nn.BatchNorm2d`` over the merged [T * B] samples, then the neuron: the zoo's chain as it is today."""

    def __init__(self, channels: int, backend: str) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.neuron = LIFNode(step_mode="m", stateful=False, backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.bn(x.flatten(0, 1)).unflatten(0, x.shape[:2]))


def main(T: int, B: int, C: int, H: int, W: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(T, B, C, H, W, requires_grad=True)
    steps = x.numel()
    rows = [
        ("BatchNorm2d + LIFNode (backend='torch', eager)", Unfused(C, "torch")),
        ("BatchNorm2d + LIFNode (backend='triton', fused neuron)", Unfused(C, "triton")),
        ("BNLIF (bn_lif, backend='triton')", BNLIF(C, backend="triton")),
    ]
    print(f"T={T}, B={B}, C={C}, H={H}, W={W}, fp32: {steps} element-steps, x = {x.untyped_storage().nbytes()} bytes")
    print("| layer | bytes held | of which x | other, >= one step | per-channel | bytes / element-step |")
    print("|---|---|---|---|---|---|")
    for name, module in rows:
        kinds = saved_bytes(module.train(), x)
        total = sum(kinds.values())
        print(f"| {name} | {total} | {kinds['x']} | {kinds['steps']} | {kinds['small']} | {total / steps:.3f} |")


if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        sys.exit("run with TRITON_INTERPRET=1 on a CPU-only machine")
    main(*(int(a) for a in sys.argv[1:6])) if len(sys.argv) > 5 else main(6, 2, 64, 32, 32)
