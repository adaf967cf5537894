"""Bad input raises a clear error naming the problem: never a crash, never a silently wrong result."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from snnkernels import functional as F
from snnkernels import nn as snn
from snnkernels.backends import BackendUnavailableError

x5 = torch.randn(4, 2, 3, 5, 5)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
@pytest.mark.parametrize("call, error, match", [
    (lambda b: F.multistep_leaky(torch.randn(5), decay=0.5, backend=b), ValueError, "at least one neuron dimension"),
    (lambda b: F.multistep_leaky(torch.randint(0, 3, (4, 5)), decay=0.5, backend=b), TypeError, "floating-point"),
    (lambda b: F.multistep_leaky(torch.ones(4, 5, dtype=torch.bool), decay=0.5, backend=b), TypeError,
     "floating-point"),
    (lambda b: F.multistep_leaky(torch.randn(0, 5), decay=0.5, backend=b), ValueError, "T = 0"),
    (lambda b: F.multistep_leaky([1.0, 2.0], decay=0.5, backend=b), TypeError, "torch.Tensor"),
    (lambda b: F.multistep_leaky(x5, torch.randn(2, 3, 5), decay=0.5, backend=b), ValueError,
     r"v_init must have shape x_seq.shape\[1:\]"),
    (lambda b: F.multistep_leaky(x5, torch.zeros(2, 3, 5, 5, dtype=torch.int32), decay=0.5, backend=b), TypeError,
     "v_init must be a floating-point"),
    (lambda b: F.multistep_leaky(x5, torch.zeros(2, 3, 5, 5, device="meta"), decay=0.5, backend=b), ValueError,
     "v_init is on meta"),
    (lambda b: F.multistep_leaky(x5, decay=torch.rand(4), backend=b), ValueError, "decay has 4 channels"),
    (lambda b: F.multistep_leaky(x5, decay=torch.rand(3, 1), backend=b), ValueError, "scalar or of shape"),
    (lambda b: F.multistep_leaky(torch.randn(4, 3), decay=torch.rand(3), backend=b), ValueError,
     r"needs x_seq of shape \[T, B, C"),
    (lambda b: F.multistep_leaky(x5, decay=torch.rand(3, device="meta"), backend=b), ValueError, "decay is on meta"),
    (lambda b: F.multistep_leaky(x5, decay=torch.tensor([1, 2, 3]), backend=b), TypeError, "floating-point tensor"),
    (lambda b: F.multistep_leaky(x5, decay="0.5", backend=b), TypeError, "decay must be a float"),
    (lambda b: F.multistep_leaky(x5, decay=0.5, v_threshold=float("nan"), backend=b), ValueError, "finite"),
    (lambda b: F.multistep_leaky(x5, decay=0.5, v_reset=float("inf"), backend=b), ValueError, "finite"),
    (lambda b: F.multistep_leaky(x5, decay=0.5, surrogate_function=torch.sigmoid, backend=b), TypeError,
     "unsupported surrogate_function"),
    (lambda b: F.multistep_lif(x5, tau=0.0, backend=b), ValueError, "tau must be positive"),
    (lambda b: F.multistep_lif(x5, tau=-2.0, backend=b), ValueError, "tau must be positive"),
])
def test_bad_input(backend, call, error, match):
    with pytest.raises(error, match=match):
        call(backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        F.multistep_lif(x5, backend="cuda")


def test_bad_environment_override(monkeypatch):
    monkeypatch.setenv("SNNKERNELS_BACKEND", "fast")
    with pytest.raises(ValueError, match="SNNKERNELS_BACKEND must be one of"):
        F.multistep_lif(x5)
    monkeypatch.setenv("SNNKERNELS_BACKEND", "torch")
    assert torch.equal(F.multistep_lif(x5), F.multistep_lif(x5, backend="torch"))


@pytest.mark.triton
def test_fp64_refused_by_triton():
    with pytest.raises(BackendUnavailableError, match="fp32, fp16 or bf16"):
        F.multistep_lif(x5.double(), backend="triton")
    # auto keeps fp64 on the reference instead of downcasting
    assert F.multistep_lif(x5.double()).dtype == torch.float64


def test_cpu_tensor_to_gpu_only_backend_without_interpreter():
    """Without TRITON_INTERPRET a CPU tensor cannot go to the Triton kernels: a clear error, not a crash."""
    code = (
        "import torch\n"
        "from snnkernels import functional as F\n"
        "from snnkernels.backends import BackendUnavailableError\n"
        "try:\n"
        "    F.multistep_lif(torch.randn(3, 4), backend='triton')\n"
        "except BackendUnavailableError as e:\n"
        "    print('RAISED', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    if torch.cuda.is_available():
        return  # irrelevant where a GPU exists: CPU tensors still refuse, covered by the message check below
    assert "RAISED" in out.stdout and "need a CUDA tensor" in out.stdout, out.stdout + out.stderr


def test_cupy_backend_needs_cuda_tensor():
    with pytest.raises(BackendUnavailableError, match="cupy"):
        F.multistep_lif(x5, backend="cupy")


def test_module_errors():
    with pytest.raises(ValueError, match="step_mode"):
        snn.LIFNode(step_mode="x")
    with pytest.raises(ValueError, match="store_v_seq"):
        snn.LIFNode(store_v_seq=True)
    with pytest.raises(ValueError, match="init_tau must be > 1"):
        snn.ParametricLIFNode(init_tau=0.5)
    with pytest.raises(ValueError, match="tau must be a positive"):
        snn.LIFNode(tau=-1.0)
    with pytest.raises(ValueError, match="channels is only meaningful"):
        snn.LeakyNode(channels=3)
    node = snn.LIFNode(step_mode="m", stateful=True, backend="torch")
    node(torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="call reset"):
        node(torch.randn(3, 5, 4))
    node.reset()
    assert node(torch.randn(3, 5, 4)).shape == (3, 5, 4)


def test_import_is_light_and_pure():
    """`import snnkernels` compiles nothing, loads no compiler stack and leaves the environment alone."""
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import snnkernels\n"
        "assert 'torch._dynamo' not in sys.modules, 'import pulled in torch._dynamo'\n"
        "assert 'snnkernels._C' not in sys.modules, 'native extension loaded at import'\n"
        "assert dict(os.environ) == before, 'import changed the environment'\n"
        "print('OK')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr
