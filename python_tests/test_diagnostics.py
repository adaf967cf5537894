"""``snnkernels.diagnostics`` and ``python -m snnkernels``: versions, the backends this machine can run (with
the probes' own reasons), and the backend each layer of a model resolves to, by the resolution functions
the ops call."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from snnkernels import backends, diagnostics, models
from snnkernels import nn as snn
from snnkernels.nn.neuron import SpikingNeuron


def test_report_names_versions_and_each_backends_reason():
    out = io.StringIO()
    text = diagnostics.report(file=out)
    assert out.getvalue() == text
    for key in ("snnkernels", "python", "torch", "triton", "CUDA devices", "C++ compiler", "nvcc", "native extension"):
        assert f"  {key}: " in text, key
    assert torch.__version__ in text
    probe = torch.empty(0)
    for name in ("torch", "triton", "native", "cupy"):
        problem = backends.backend_problem(name, probe)
        assert (f"unavailable: {problem}" if problem else f"{name:<7} available") in text, name
    assert f"auto -> neurons: {backends.resolve_backend('auto', probe)}" in text


def test_layers_resolve_as_their_ops_do():
    model = models.DTA_SNN_18()
    rows = diagnostics.layer_backends(model)
    modules = dict(model.named_modules())
    probe = torch.empty(0)
    assert rows and all(r.name in modules for r in rows)
    for row in rows:
        module = modules[row.name]
        if isinstance(module, SpikingNeuron):
            assert row.resolved == backends.resolve_backend(module.backend, probe), row
        else:
            assert row.resolved == backends.resolve_triton_op_backend(module.backend, probe, row.kind), row
    kinds = {r.kind for r in rows}
    assert {"TETLIFNode", "DTA", "TNA", "TXA"} <= kinds, kinds
    assert type(model).__name__ not in kinds, "the network's own backend switch is not a layer"
    assert len([r for r in rows if r.kind == "TETLIFNode"]) == sum(
        isinstance(m, SpikingNeuron) for m in model.modules()
    )


def test_auto_says_why_it_skipped_a_backend(monkeypatch):
    monkeypatch.setitem(backends._PROBES, "native", lambda device, dtype: "native kernels are switched off here")
    monkeypatch.delenv("SNNKERNELS_BACKEND", raising=False)
    (row,) = diagnostics.layer_backends(nn.Sequential(snn.LIFNode(step_mode="m")))
    assert (row.requested, row.resolved) == ("auto", "torch")
    assert row.reason == "not native: native kernels are switched off here"


def test_an_unrunnable_request_is_shown_not_raised():
    model = nn.Sequential(snn.LIFNode(step_mode="m", backend="cupy"), snn.LIFNode(step_mode="m"))
    rows = diagnostics.layer_backends(model)
    assert rows[0].resolved is None and "BackendUnavailableError" not in rows[0].reason
    assert rows[0].reason.startswith("backend='cupy' cannot run:"), rows[0].reason
    text = diagnostics.report(model, file=io.StringIO())
    assert "CANNOT RUN" in text and rows[0].reason in text


def test_a_bad_backend_variable_is_reported(monkeypatch):
    monkeypatch.setenv("SNNKERNELS_BACKEND", "bogus")
    model = nn.Sequential(snn.LIFNode(step_mode="m"))
    text = diagnostics.report(model, file=io.StringIO())
    assert "SNNKERNELS_BACKEND=bogus" in text and "CANNOT RUN" in text
    assert "SNNKERNELS_BACKEND must be one of" in text


def test_dtype_and_device_come_from_the_model():
    model = nn.Sequential(nn.Linear(3, 3), snn.LIFNode(step_mode="m")).to(torch.float64)
    (row,) = diagnostics.layer_backends(model)
    assert row.resolved == backends.resolve_backend("auto", torch.empty(0, dtype=torch.float64)) == "torch"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SNNKERNELS_BACKEND"}
    return subprocess.run(
        [sys.executable, "-m", "snnkernels", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_cli_help():
    out = _cli("--help")
    assert out.returncode == 0, out.stderr
    assert "--model MODULE:CALLABLE" in out.stdout and "snnkernels.models:DTA_SNN_18" in out.stdout


def test_cli_prints_a_zoo_networks_layers():
    out = _cli("--model", "snnkernels.models:TCJA_DVS128", "--arg", "backend='torch'")
    assert out.returncode == 0, out.stderr
    assert "layers of TCJA_DVS128 (cpu, torch.float32):" in out.stdout
    assert "LIFNode  torch      torch" in out.stdout and "TCJA" in out.stdout
    assert "versions:" in out.stdout and "backends for cpu tensors" in out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "snnkernels.models"],
        ["--model", "snnkernels.models:Nope"],
        ["--model", "snnkernels.models:DTA_SNN_18", "--arg", "num_classes"],
    ],
)
def test_cli_refuses_a_bad_model(args):
    out = _cli(*args)
    assert out.returncode == 2 and "cannot build --model" in out.stderr, (out.returncode, out.stderr)
