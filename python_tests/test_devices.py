"""Every Triton launch runs on its tensors' CUDA device: Triton launches on the current device, so each launch
site enters ``on_device_of`` (snnkernels/ops/_device.py). Checked here on the CPU by reading the launchers (a
launch outside the guard fails the test) and, on a machine with two GPUs, by running on the second one."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest
import torch

from snnkernels.ops._device import on_device_of

OPS = Path(__file__).resolve().parents[1] / "snnkernels" / "ops"


def _launches(tree: ast.AST) -> list[ast.Call]:
    """Calls of the form ``name[grid](...)`` whose name is a kernel (``kernel`` or ``*_kernel``)."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Subscript)
        and isinstance(node.func.value, ast.Name)
        and (node.func.value.id == "kernel" or node.func.value.id.endswith("_kernel"))
    ]


def _guarded(tree: ast.AST) -> set[int]:
    """ids of the nodes inside a ``with on_device_of(...)`` block."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "id", "") == "on_device_of"
            for item in node.items
        ):
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def test_every_triton_launch_is_guarded():
    found, unguarded = 0, []
    for path in sorted(OPS.glob("*.py")):
        tree = ast.parse(path.read_text())
        guarded = _guarded(tree)
        for call in _launches(tree):
            found += 1
            if id(call) not in guarded:
                unguarded.append(f"{path.name}:{call.lineno}")
    # the test must see the launches it checks: 14 sites (the gated and DTA forwards share launch_neuron_fwd)
    assert found >= 14, found
    assert not unguarded, f"Triton launches outside `with on_device_of(...)`: {unguarded}"


def test_guard_selects_the_tensors_device():
    cpu = on_device_of(torch.zeros(1))
    assert not isinstance(cpu, torch.cuda.device)  # the interpreter: nothing to select
    cuda1 = on_device_of(types.SimpleNamespace(is_cuda=True, device=torch.device("cuda", 1)))
    assert isinstance(cuda1, torch.cuda.device) and cuda1.idx == 1


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_triton_lif_on_a_second_gpu_while_the_first_is_current():
    from snnkernels.functional import multistep_lif

    torch.cuda.set_device(0)
    x = (torch.randn(5, 3, 4, 7, 9, device="cuda:1") * 1.5 + 0.3).requires_grad_()
    g = torch.randn_like(x)
    out = multistep_lif(x, tau=2.0, backend="triton")
    (dx,) = torch.autograd.grad(out, x, g)
    ref = multistep_lif(x, tau=2.0, backend="torch")
    (rdx,) = torch.autograd.grad(ref, x, g)
    assert out.device == x.device and torch.equal(out, ref)
    torch.testing.assert_close(dx, rdx, rtol=1e-5, atol=1e-6)
