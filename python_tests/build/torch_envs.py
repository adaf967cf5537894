"""Throwaway virtual environments with another torch, for building and testing the native extension against
the oldest and the newest torch that pyproject's dependency range allows (test_torch_matrix.py).

PyPI's Linux torch wheels are CUDA builds that do not import without NVIDIA's libraries, even on a CPU.
Each environment gets torch with ``--no-deps``, its pure-Python requirements, and a link to one shared copy
of the NVIDIA libraries per CUDA version, installed once from the newest matrix torch's pins (the libraries
keep their sonames within a CUDA major version, and nothing here runs on a GPU). Triton is left out: the
Triton tests run in the main environment.

The environments are kept in ``SNNKERNELS_TORCH_ENVS`` (default ``~/.cache/snnkernels/torch-envs``, ENVs.md),
keyed by torch version and guarded by a file lock, so the downloads happen once per machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
# Installed beside torch to build and test: ninja (parallel compiles), the test runner, numpy below 2.4 as in
# requirements-dev.txt.
TOOLS = ["ninja", "pytest", "numpy<2.4"]
_SKIPPED_REQUIREMENTS = {"triton", "cuda-bindings"}


class TorchUnavailable(RuntimeError):
    """The torch wheel asked for cannot be obtained here (no index or file has it)."""


@dataclass(frozen=True)
class TorchWheel:
    spec: str
    version: str
    requires: tuple[str, ...]

    @property
    def cuda(self) -> str | None:
        """The CUDA version its NVIDIA libraries come from (cuda-toolkit's pin, major.minor), if any."""
        for line in self.requires:
            match = re.match(r"cuda-toolkit\[.*\]==(\d+\.\d+)", line.replace(" ", ""))
            if match:
                return match.group(1)
        return None

    def split_requires(self) -> tuple[list[str], list[str]]:
        """(pure-Python requirements, NVIDIA library requirements), without extras-only and skipped ones."""
        python, nvidia = [], []
        for line in self.requires:
            req = Requirement(line)
            if req.name in _SKIPPED_REQUIREMENTS or (req.marker and "extra" in str(req.marker)):
                continue
            if req.marker and not req.marker.evaluate():
                continue
            (nvidia if req.name.startswith(("nvidia-", "cuda-")) else python).append(line)
        return python, nvidia


def torch_range() -> tuple[str, str]:
    """(oldest, newest) requirement strings from pyproject's torch dependency, e.g. torch==2.11.* and
    torch>=2.11,<2.15 (pip picks the newest release that the range allows)."""
    dependencies = re.search(r"^dependencies\s*=\s*\[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    (line,) = [d for d in re.findall(r'"([^"]+)"', dependencies.group(1)) if Requirement(d).name == "torch"]
    lower = [s.version for s in Requirement(line).specifier if s.operator == ">="]
    assert lower, f"pyproject's torch requirement has no lower bound: {line}"
    return f"torch=={lower[0]}.*", line


def newest_minor_allowed(line: str) -> str:
    """The minor release just below the range's exclusive upper bound (torch<2.15 -> 2.14)."""
    (upper,) = [Version(s.version) for s in Requirement(line).specifier if s.operator == "<"]
    return f"{upper.major}.{upper.minor - 1}"


def _pip(python: str | Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _must(out: subprocess.CompletedProcess, what: str) -> None:
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def resolve(spec: str) -> TorchWheel:
    """Which torch wheel pip picks for ``spec`` on this machine, with its requirements (nothing installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        out = _pip(
            sys.executable,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            "--quiet",
            "--report",
            str(report),
            spec,
            timeout=600,
        )
        if out.returncode != 0:
            raise TorchUnavailable(f"pip cannot obtain {spec}: {out.stderr.strip()[-1500:]}")
        (item,) = json.loads(report.read_text())["install"]
    meta = item["metadata"]
    return TorchWheel(spec, meta["version"], tuple(meta.get("requires_dist", [])))


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "snnkernels" / "torch-envs"
    path = Path(os.environ.get("SNNKERNELS_TORCH_ENVS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked() -> Iterator[Path]:
    """The cache, held by this process (other test runs on the machine wait)."""
    root = cache_dir()
    with open(root / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _imports_torch(venv: Path, version: str) -> bool:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return out.returncode == 0 and out.stdout.strip().split("+")[0] == version


def _nvidia_stack(root: Path, wheel: TorchWheel) -> Path:
    """The shared NVIDIA libraries for ``wheel``'s CUDA version (installed on first use)."""
    target = root / f"nvidia-cuda-{wheel.cuda or wheel.version}"
    if (target / ".ready").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    _must(
        _pip(sys.executable, "install", "--quiet", "--target", str(target), *wheel.split_requires()[1]),
        f"installing the NVIDIA libraries of torch {wheel.version}",
    )
    (target / ".ready").write_text(wheel.version)
    return target


def environment(wheel: TorchWheel, libraries_from: TorchWheel) -> Path:
    """A virtual environment with ``wheel``'s torch (created on first use; the caller holds ``locked()``).
    ``libraries_from``: the torch whose NVIDIA pins provide the shared libraries (the newest of the matrix)
    when its CUDA version is ``wheel``'s."""
    root = cache_dir()
    venv = root / f"torch-{wheel.version}"
    if (venv / ".ready").exists() and _imports_torch(venv, wheel.version):
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    _must(
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        ),
        "creating the venv",
    )
    # pip of the running interpreter installs into the new environment (--python), so no pip bootstrap
    python = str(venv / "bin" / "python")
    _must(
        _pip(sys.executable, "--python", python, "install", "--quiet", "--no-deps", f"torch=={wheel.version}"),
        f"installing torch {wheel.version}",
    )
    python_requires, _ = wheel.split_requires()
    _must(
        _pip(sys.executable, "--python", python, "install", "--quiet", *python_requires, *TOOLS, "pip"),
        f"installing torch {wheel.version}'s requirements",
    )
    source = libraries_from if libraries_from.cuda == wheel.cuda else wheel
    if source.split_requires()[1]:
        site = _site_packages(venv)
        # relative, so that the cache folder can move
        (site / "nvidia").symlink_to(os.path.relpath(_nvidia_stack(root, source) / "nvidia", site))
    if not _imports_torch(venv, wheel.version):
        out = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, check=False)
        raise RuntimeError(f"torch {wheel.version} does not import in {venv}:\n{out.stderr[-3000:]}")
    (venv / ".ready").write_text(wheel.spec)
    return venv


def prune(keep: set[str]) -> None:
    """Removes the environments and library stacks of torch versions no longer in the matrix."""
    root = cache_dir()
    for path in root.glob("torch-*"):
        if path.name.removeprefix("torch-") not in keep:
            shutil.rmtree(path, ignore_errors=True)
