"""Test harness: per-test seeds, NaN-poisoned allocations inside snnkernels, markers, device and sizes.

- Seeds: every test seeds torch / numpy / random from a hash of its node id, so each test sees fresh data
  that is reproducible run after run (and independent of which other tests ran before it).
- NaN poisoning: ``torch.empty``, ``torch.empty_like`` and ``Tensor.new_empty`` called *directly from
  code in the snnkernels package* return floating tensors filled with NaN. An output element that a kernel
  forgets to write then shows up as NaN in the comparison instead of as stale memory that may happen to
  hold the right value. Fake / meta tensors (torch.compile tracing) and calls made while dynamo traces are
  left alone. The check looks at one frame (the direct caller), so it costs next to nothing.
- Markers: ``triton`` (runs the Triton kernels: needs CUDA, or ``TRITON_INTERPRET=1`` set before import so
  the interpreter runs them on CPU tensors) and ``cuda`` (needs a CUDA device). Without them the tests are
  skipped with the reason.
- ``--quick`` shrinks the parameter lists (``pick(full, quick)``); ``DEVICE`` / the ``device`` fixture is
  "cuda" where a GPU exists, else "cpu"; ``ON_GPU`` lets tests use bigger shapes on a real GPU;
  ``fused_backends()`` lists the fused backends this machine runs, as test parameters.
"""

from __future__ import annotations

import os
import random
import sys
import zlib

import numpy as np
import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cuda" if HAS_CUDA else "cpu"
ON_GPU = HAS_CUDA and not INTERPRET

try:
    import triton  # noqa: F401

    HAS_TRITON = True
    _TRITON_ERROR = ""
except ImportError as exc:  # pragma: no cover - depends on the install
    HAS_TRITON = False
    _TRITON_ERROR = repr(exc)

QUICK = False


def pick(full: list, quick: list) -> list:
    """``full`` normally, ``quick`` under ``--quick`` (decided at collection time)."""
    return quick if QUICK else full


def native_packing() -> object:
    """The "native" packing backend as a parameter: the extension's C++ CPU kernels, skipped with the reason on a
    GPU run (they pack CPU tensors) or where the extension is not built."""
    from snnkernels.backends import backend_problem

    problem = "the native packing runs on the CPU" if DEVICE != "cpu" else backend_problem("native", torch.empty(1))
    return pytest.param("native", marks=pytest.mark.skipif(problem is not None, reason=str(problem)), id="native")


def fused_backends() -> list:
    """Triton always (skipped by conftest without CUDA / the interpreter); native and CuPy only where they can
    run here, so that their coverage appears automatically once they are built."""
    from snnkernels.backends import backend_problem

    params = [pytest.param("triton", marks=pytest.mark.triton, id="triton")]
    probe = torch.empty(1, device=DEVICE)
    for name in ("native", "cupy"):
        try:
            problem = backend_problem(name, probe)
        except Exception as exc:  # a probe must never break collection
            problem = repr(exc)
        if problem is None:
            params.append(pytest.param(name, id=name))
    return params


def pytest_addoption(parser):
    parser.addoption(
        "--quick", action="store_true", default=False, help="shrink the shape / option lists of the snnkernels tests"
    )


def pytest_configure(config):
    global QUICK
    QUICK = bool(config.getoption("--quick", default=False))
    config.addinivalue_line("markers", "triton: runs the Triton kernels (CUDA, or CPU under TRITON_INTERPRET=1)")
    config.addinivalue_line("markers", "cuda: needs a CUDA device")
    # the interpreter's own deprecation noise (numpy scalar conversion), one per kernel launch
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:triton.runtime.interpreter")


def triton_skip_reason() -> str | None:
    if not HAS_TRITON:
        return f"triton is not importable ({_TRITON_ERROR})"
    if HAS_CUDA or INTERPRET:
        return None
    return (
        "the Triton kernels need a CUDA GPU, or TRITON_INTERPRET=1 set before import to run them on the CPU "
        "through Triton's interpreter"
    )


def pytest_collection_modifyitems(config, items):
    reason = triton_skip_reason()
    skip_triton = pytest.mark.skip(reason=reason) if reason else None
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:  # markers only: item.keywords would also match parameter ids such as [cuda]
        if skip_triton is not None and item.get_closest_marker("triton") is not None:
            item.add_marker(skip_triton)
        if not HAS_CUDA and item.get_closest_marker("cuda") is not None:
            item.add_marker(skip_cuda)


def seed_of(text: str) -> int:
    return zlib.crc32(text.encode())


def seed_id(nodeid: str) -> str:
    """The node id a test's seed comes from: its file named as if directly in python_tests/, so that a test keeps
    its data when the test tree is reorganised (``python_tests/ops/test_x.py::t`` seeds as
    ``python_tests/test_x.py::t``)."""
    path, sep, rest = nodeid.partition("::")
    return "python_tests/" + path.rsplit("/", 1)[-1] + sep + rest


@pytest.fixture(autouse=True)
def _seed(request):
    seed = seed_of(seed_id(request.node.nodeid))
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return seed


def _poisoning(alloc):
    def poisoned(*args, **kwargs):
        out = alloc(*args, **kwargs)
        if torch.compiler.is_compiling():
            return out
        if (
            type(out) is torch.Tensor  # FakeTensor, FunctionalTensor and other subclasses are left alone
            and out.is_floating_point()
            and out.device.type != "meta"
            and sys._getframe(1).f_globals.get("__name__", "").startswith("snnkernels")
        ):
            with torch.no_grad():
                out.fill_(float("nan"))
        return out

    poisoned.__wrapped__ = alloc
    return poisoned


@pytest.fixture(autouse=True)
def _nan_poison(monkeypatch):
    monkeypatch.setattr(torch, "empty", _poisoning(torch.empty))
    monkeypatch.setattr(torch, "empty_like", _poisoning(torch.empty_like))
    monkeypatch.setattr(torch.Tensor, "new_empty", _poisoning(torch.Tensor.new_empty))


@pytest.fixture
def device() -> str:
    return DEVICE


@pytest.fixture
def quick(request) -> bool:
    return bool(request.config.getoption("--quick"))
