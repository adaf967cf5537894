"""The native extension builds and runs against the oldest and the newest torch that pyproject allows
(``torch>=2.11,<2.15``: the newest 2.11 and the newest release below 2.15), installed from this checkout's
sdist exactly as a user would: ``pip install --no-build-isolation <sdist>`` into an environment with that
torch (torch_envs.py), ``SNNKERNELS_BUILD_NATIVE=1`` so that a failed build fails here. Then the native
kernels' tests against the eager reference (test_leaky.py, native cases) run there.

The builds use ``DEBUG=1`` (-O0): what differs between torch versions is the headers, the C++ standard and
the ABI, not the optimiser, and -O0 compiles several times faster (a whole build took 1.7 min instead of 10
on the shared 2-core machine). The main environment's build (scripts/setup_env.sh) is the optimised one.
Measured on that machine, both versions: 2.0 min with the environments cached, 4.9 min on first use
(environments and NVIDIA libraries installed, 6 GB), with a load of about 4 from other work.

Skipped, with pip's reason, only when a torch wheel cannot be obtained on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

import build_dist
import torch_envs

ROOT = Path(__file__).resolve().parents[2]
BUILD_ENV = {
    "SNNKERNELS_BUILD_NATIVE": "1",
    "SNNKERNELS_BUILD_CUDA": "0",
    "DEBUG": "1",
    "MAX_JOBS": str(os.cpu_count() or 2),
}
NATIVE_TESTS = ["python_tests/ops/test_leaky.py", "-k", "native"]
_CHECK = """
import json, os, snnkernels, torch
from snnkernels import _ext
_ext.load_native()
package = os.path.dirname(snnkernels.__file__)
print(json.dumps({"torch": torch.__version__, "native": _ext.native_status(), "package": package,
                  "py.typed": os.path.exists(os.path.join(package, "py.typed"))}))
"""


@pytest.fixture(scope="module")
def matrix():
    """(sdist, {"oldest": wheel, "newest": wheel}), resolved once; skips when a wheel cannot be obtained."""
    oldest, newest = torch_envs.torch_range()
    try:
        wheels = {"oldest": torch_envs.resolve(oldest), "newest": torch_envs.resolve(newest)}
    except torch_envs.TorchUnavailable as exc:
        pytest.skip(str(exc))
    wanted = torch_envs.newest_minor_allowed(newest)
    if not wheels["newest"].version.startswith(wanted + "."):
        pytest.skip(f"torch {wanted} cannot be obtained here: pip resolves {newest} to {wheels['newest'].version}")
    with tempfile.TemporaryDirectory() as tmp:
        yield build_dist.build(Path(tmp)), wheels


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout, check=False)


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_native_extension_against_torch(matrix, which, tmp_path):
    source, wheels = matrix
    wheel = wheels[which]
    with torch_envs.locked():
        torch_envs.prune({w.version for w in wheels.values()})
        venv = torch_envs.environment(wheel, libraries_from=wheels["newest"])
        python = str(venv / "bin" / "python")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SNNKERNELS_", "TRITON_"))}
        env.update(BUILD_ENV)
        out = _run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-build-isolation",
                "--no-deps",
                "--force-reinstall",
                "--no-cache-dir",
                "-v",
                str(source),
            ],
            tmp_path,
            env,
            2400,
        )
        assert out.returncode == 0, f"the build against torch {wheel.version} failed:\n{out.stderr[-6000:]}"

        out = _run([python, "-c", _CHECK], tmp_path, env, 300)
        assert out.returncode == 0, out.stderr[-3000:]
        found = json.loads(out.stdout.strip().splitlines()[-1])
        assert found["torch"].split("+")[0] == wheel.version, found
        assert found["native"] == [True, "snnkernels._C loaded (ahead-of-time build)"], found
        assert found["package"].startswith(str(venv)), f"imported {found['package']}, not the installed sdist"
        assert found["py.typed"], "py.typed is not installed"

        # the repository's tests, run outside the checkout so that `import snnkernels` is the installed sdist
        out = _run(
            [python, "-m", "pytest", str(ROOT / NATIVE_TESTS[0]), *NATIVE_TESTS[1:], "-q", "-p", "no:cacheprovider"],
            tmp_path,
            env,
            1200,
        )
        assert out.returncode == 0, f"native tests against torch {wheel.version}:\n{out.stdout[-6000:]}"
        assert " passed" in out.stdout and " failed" not in out.stdout, out.stdout[-3000:]
        print(f"torch {wheel.version}: {out.stdout.strip().splitlines()[-1]}")
