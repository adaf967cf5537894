"""``backend="auto"`` never raises because a backend cannot run: it moves on to the next one, and the reason
stays visible (``backend_problem``, ``python -m snnkernels``); an explicit backend raises
``BackendUnavailableError`` with that reason.

The case that broke this: ``SNNKERNELS_JIT=1`` where the just-in-time build cannot work (a broken compiler,
no ninja). It runs in a fresh process with the ahead-of-time extension hidden, as on a machine that never
built it; the failed build is remembered, not retried on every call.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import torch

from snnkernels import backends
from snnkernels import functional as F
from snnkernels.backends import BackendUnavailableError

from utils import HIDE_NATIVE_EXTENSION

_CHECK = (
    HIDE_NATIVE_EXTENSION
    + """
import os
import torch
if os.environ["MODE"] == "no-ninja":
    from torch.utils import cpp_extension
    cpp_extension.is_ninja_available = lambda: False
from snnkernels import functional as F
from snnkernels.backends import BackendUnavailableError, backend_problem, resolve_backend

def compiler_calls():
    return open(os.environ["CALLS"]).read().count("call") if os.path.exists(os.environ["CALLS"]) else 0

x = torch.rand(4, 2, 8)
want = F.multistep_lif(x, backend="torch")
calls = []
for _ in range(2):  # the second call must neither raise nor try to build again
    assert resolve_backend("auto", x) == "torch"
    assert torch.equal(F.multistep_lif(x, backend="auto"), want)
    calls.append(compiler_calls())
assert calls[0] == calls[1], f"the failed JIT build was retried: compiler calls {calls}"
if os.environ["MODE"] == "broken-compiler":
    assert calls[0] >= 1, "the JIT build never ran the compiler"
problem = backend_problem("native", x)
assert "just-in-time build (SNNKERNELS_JIT=1) failed" in problem, problem
try:
    F.multistep_lif(x, backend="native")
except BackendUnavailableError as exc:
    assert "just-in-time build (SNNKERNELS_JIT=1) failed" in str(exc), exc
else:
    raise AssertionError("backend='native' ran without an extension")
print("fallback ok:", problem)
"""
)


def _failing_compiler(tmp_path) -> tuple[str, str]:
    """A C++ 'compiler' that fails every call and counts them (in the file ``calls``)."""
    calls = tmp_path / "calls"
    script = tmp_path / "broken-c++"
    script.write_text(f"#!/bin/sh\necho call >> {calls}\necho 'broken-c++: error: no compiler here' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), str(calls)


@pytest.mark.parametrize("mode", ["broken-compiler", "no-ninja"])
def test_auto_survives_a_jit_that_cannot_build(tmp_path, mode):
    compiler, calls = _failing_compiler(tmp_path)
    env = dict(
        os.environ, SNNKERNELS_JIT="1", TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"), MODE=mode, CXX=compiler, CALLS=calls
    )
    env.pop("SNNKERNELS_BACKEND", None)
    env.pop("TRITON_INTERPRET", None)
    out = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "fallback ok" in out.stdout, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def test_a_probe_that_raises_is_a_reason(monkeypatch):
    """Whatever a probe raises: "auto" skips that backend, an explicit request raises the reason."""

    def broken(device, dtype):
        raise IndexError("list index out of range")

    monkeypatch.setitem(backends._PROBES, "native", broken)
    monkeypatch.delenv("SNNKERNELS_BACKEND", raising=False)
    x = torch.rand(3, 2, 5)
    assert backends.resolve_backend("auto", x) == "torch"
    assert torch.equal(F.multistep_lif(x, backend="auto"), F.multistep_lif(x, backend="torch"))
    assert "IndexError" in backends.backend_problem("native", x)
    with pytest.raises(BackendUnavailableError, match="IndexError: list index out of range"):
        backends.resolve_backend("native", x)
