"""Bad input raises a clear error that names the problem: never a crash inside a kernel, never a silently wrong
result. Argument checks run before any backend is chosen, so each case is tried with every backend name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snnkernels import functional as F
from snnkernels import surrogate as sg
from snnkernels.backends import BackendUnavailableError

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["torch", "triton", "auto"]


def x5(dtype=torch.float32):
    return torch.randn(4, 2, 3, 5, 5, dtype=dtype)


def leaky(*args, **kwargs):
    kwargs.setdefault("decay", 0.5)
    return F.multistep_leaky(*args, **kwargs)


CASES = {
    # x_seq
    "x-1d": (
        lambda b: leaky(torch.randn(5), backend=b),
        ValueError,
        r"x_seq must have shape \[T, \.\.\.\] with at least one neuron dimension, got shape \(5,\)",
    ),
    "x-0d": (lambda b: leaky(torch.tensor(1.0), backend=b), ValueError, r"at least one neuron dimension.*\(\)"),
    "x-int": (
        lambda b: leaky(torch.randint(0, 3, (4, 5)), backend=b),
        TypeError,
        "x_seq must be a floating-point tensor.*torch.int64",
    ),
    "x-bool": (
        lambda b: leaky(torch.ones(4, 5, dtype=torch.bool), backend=b),
        TypeError,
        "x_seq must be a floating-point tensor.*torch.bool",
    ),
    "x-list": (lambda b: leaky([[1.0, 2.0]], backend=b), TypeError, "x_seq must be a torch.Tensor, got list"),
    "T=0": (lambda b: leaky(torch.randn(0, 5), backend=b), ValueError, "T = 0 time steps"),
    "T=0-lif": (lambda b: F.multistep_lif(torch.randn(0, 2, 3), backend=b), ValueError, "T = 0 time steps"),
    # v_init
    "v_init-shape": (
        lambda b: leaky(x5(), torch.randn(2, 3, 5), backend=b),
        ValueError,
        r"v_init must have shape x_seq.shape\[1:\] = \(2, 3, 5, 5\), got \(2, 3, 5\)",
    ),
    "v_init-with-T": (
        lambda b: leaky(x5(), torch.randn(4, 2, 3, 5, 5), backend=b),
        ValueError,
        r"v_init must have shape x_seq.shape\[1:\]",
    ),
    "v_init-device": (
        lambda b: leaky(x5(), torch.zeros(2, 3, 5, 5, device="meta"), backend=b),
        ValueError,
        "v_init is on meta but x_seq is on cpu",
    ),
    "v_init-int": (
        lambda b: leaky(x5(), torch.zeros(2, 3, 5, 5, dtype=torch.int32), backend=b),
        TypeError,
        "v_init must be a floating-point tensor, got torch.int32",
    ),
    "v_init-float": (lambda b: leaky(x5(), 0.5, backend=b), TypeError, "v_init must be a tensor"),
    # coefficients
    "decay-C": (
        lambda b: leaky(x5(), decay=torch.rand(4), backend=b),
        ValueError,
        r"decay has 4 channels but x_seq has C = x_seq.shape\[2\] = 3",
    ),
    "gain-C": (lambda b: leaky(x5(), input_gain=torch.rand(2), backend=b), ValueError, "input_gain has 2 channels"),
    "bias-C": (lambda b: leaky(x5(), bias=torch.rand(5), backend=b), ValueError, "bias has 5 channels"),
    "tau-C": (lambda b: F.multistep_lif(x5(), tau=torch.full((2,), 2.0), backend=b), ValueError, "tau has 2 channels"),
    "decay-rank2": (
        lambda b: leaky(x5(), decay=torch.rand(3, 1), backend=b),
        ValueError,
        r"decay must be a scalar or of shape \[C\], got shape \(3, 1\)",
    ),
    "decay-rank2-1elem": (
        lambda b: leaky(x5(), decay=torch.rand(1, 1), backend=b),
        ValueError,
        r"decay must be a scalar or of shape \[C\]",
    ),
    "gain-rank0-but-x-2d": (
        lambda b: leaky(torch.randn(4, 3), input_gain=torch.rand(3), backend=b),
        ValueError,
        r"a per-channel input_gain of shape \(3,\) needs x_seq of shape \[T, B, C, \.\.\.\]",
    ),
    "decay-device": (
        lambda b: leaky(x5(), decay=torch.rand(3, device="meta"), backend=b),
        ValueError,
        "decay is on meta but x_seq is on cpu",
    ),
    "bias-device": (
        lambda b: leaky(x5(), bias=torch.rand((), device="meta"), backend=b),
        ValueError,
        "bias is on meta",
    ),
    "decay-int-tensor": (
        lambda b: leaky(x5(), decay=torch.tensor([1, 2, 3]), backend=b),
        TypeError,
        "decay must be a float or a floating-point tensor, got torch.int64",
    ),
    "decay-str": (lambda b: leaky(x5(), decay="0.5", backend=b), TypeError, "decay must be a float, got str"),
    "decay-nan": (lambda b: leaky(x5(), decay=float("nan"), backend=b), ValueError, "decay must be finite"),
    "tau-zero": (lambda b: F.multistep_lif(x5(), tau=0.0, backend=b), ValueError, "tau must be positive, got 0.0"),
    "tau-negative": (lambda b: F.multistep_lif(x5(), tau=-2.0, backend=b), ValueError, "tau must be positive"),
    "tau-inf": (lambda b: F.multistep_lif(x5(), tau=float("inf"), backend=b), ValueError, "tau must be finite"),
    # scalars
    "threshold-nan": (
        lambda b: leaky(x5(), v_threshold=float("nan"), backend=b),
        ValueError,
        "v_threshold must be finite, got nan",
    ),
    "threshold-inf": (
        lambda b: leaky(x5(), v_threshold=float("inf"), backend=b),
        ValueError,
        "v_threshold must be finite",
    ),
    "threshold-bool": (
        lambda b: leaky(x5(), v_threshold=True, backend=b),
        TypeError,
        "v_threshold must be a float, got bool",
    ),
    "threshold-tensor": (
        lambda b: leaky(x5(), v_threshold=torch.tensor(1.0), backend=b),
        TypeError,
        "v_threshold must be a float, got Tensor",
    ),
    "v_reset-inf": (lambda b: leaky(x5(), v_reset=float("-inf"), backend=b), ValueError, "v_reset must be finite"),
    "lif-v_reset-nan": (
        lambda b: F.multistep_lif(x5(), v_reset=float("nan"), backend=b),
        ValueError,
        "v_reset must be finite",
    ),
    # surrogate
    "surrogate-callable": (
        lambda b: leaky(x5(), surrogate_function=torch.sigmoid, backend=b),
        TypeError,
        "unsupported surrogate_function",
    ),
    "surrogate-class": (
        lambda b: leaky(x5(), surrogate_function=sg.ATan, backend=b),
        TypeError,
        "unsupported surrogate_function",
    ),
    "surrogate-module": (
        lambda b: leaky(x5(), surrogate_function=torch.nn.Sigmoid(), backend=b),
        TypeError,
        "unsupported surrogate_function",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, backend):
    call, error, match = CASES[case]
    with pytest.raises(error, match=match):
        call(backend)


@pytest.mark.parametrize("name", ["cuda", "Triton", "", "numpy"])
def test_unknown_backend(name):
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'torch', 'triton', 'native', 'cupy'\)"):
        F.multistep_lif(x5(), backend=name)


def test_bad_environment_override(monkeypatch):
    monkeypatch.setenv("SNNKERNELS_BACKEND", "fast")
    with pytest.raises(ValueError, match="SNNKERNELS_BACKEND must be one of .* got 'fast'"):
        F.multistep_lif(x5())
    # an explicit backend is unaffected by the variable
    x = x5()
    assert torch.equal(
        F.multistep_lif(x, backend="torch"), F.multistep_leaky(x, decay=0.5, input_gain=0.5, backend="torch")
    )
    monkeypatch.setenv("SNNKERNELS_BACKEND", "torch")
    assert torch.equal(F.multistep_lif(x), F.multistep_lif(x, backend="torch"))


def test_fp64_refused_by_triton():
    """fp64 is a reference-only dtype: the kernels would silently lose precision, so backend='triton' refuses;
    'auto' keeps fp64 on the reference."""
    with pytest.raises(BackendUnavailableError, match=r"backend='triton' cannot run.*fp32, fp16 or bf16.*float64"):
        F.multistep_lif(x5(torch.float64), backend="triton")
    out = F.multistep_lif(x5(torch.float64))
    assert out.dtype == torch.float64


def test_cupy_backend_refuses_cpu_tensor():
    with pytest.raises(BackendUnavailableError, match="backend='cupy' cannot run"):
        F.multistep_lif(x5(), backend="cupy")


def test_cpu_tensor_to_triton_without_interpreter():
    """Without TRITON_INTERPRET a CPU tensor cannot go to the Triton kernels: a BackendUnavailableError that says
    what to do, not a crash. Run in a fresh interpreter since the variable is read at import."""
    code = (
        "import torch\n"
        "from snnkernels import functional as F\n"
        "from snnkernels.backends import BackendUnavailableError\n"
        "try:\n"
        "    F.multistep_lif(torch.randn(3, 4), backend='triton')\n"
        "except BackendUnavailableError as e:\n"
        "    print('RAISED:', e)\n"
        "else:\n"
        "    print('NO ERROR')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RAISED:" in out.stdout, out.stdout + out.stderr[-3000:]
    message = out.stdout.split("RAISED:", 1)[1]
    assert ("need a CUDA tensor, got one on cpu" in message and "TRITON_INTERPRET=1" in message) or (
        "Triton is not importable" in message
    ), message


def test_surrogate_parameter_errors():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha must be a positive finite number"):
            sg.ATan(bad)
    with pytest.raises(ValueError, match="width must be a positive finite number"):
        sg.Rectangle(-0.5)


def test_nonpositive_tensor_tau_rejected():
    """A tensor tau <= 0 makes decay = 1 - 1/tau >= 1 or infinite: the same error as for a float tau."""
    x = x5()
    for tau in (torch.tensor(0.0), torch.tensor(-2.0), torch.tensor([2.0, -1.0, 3.0])):
        with pytest.raises(ValueError, match="tau must be positive"):
            F.multistep_lif(x, tau=tau, backend="torch")
