"""setup.py's native build, without compiling anything: a stand-in C++ compiler records every compile command
and fails it, so these tests take seconds.

- The C++ standard is torch's own choice: the extension's compile commands carry exactly the ``-std=`` that
  torch.utils.cpp_extension gives an extension that asks for none (torch 2.14's headers need C++20; a pinned
  C++17 built nothing there while pip reported success).
- A build that starts and fails stops the install (``SNNKERNELS_BUILD_NATIVE=auto`` and ``1``) with the
  compiler's error lines and the fixes; no silent pure-Python install.
- No torch at build time (pip's build isolation): ``auto`` installs pure Python with a loud warning, ``1``
  stops.

The real builds (torch 2.11 and 2.14, from an sdist) are in test_torch_matrix.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from snnkernels import _native_sources

ROOT = Path(__file__).resolve().parents[2]
FAKE_ERROR = "leaky_api.cpp:6:2: error: stand-in compiler refuses this file"


def _fake_compiler(folder: Path) -> tuple[str, Path]:
    """A ``c++`` that logs and fails every compile (``-c``) and passes anything else to the real one."""
    log = folder / "compile_commands.log"
    script = folder / "fake-c++"
    real = shutil.which("c++") or shutil.which("g++")
    assert real is not None, "a C++ compiler is needed for torch's compiler checks"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -c "*) ;; *) exec ' + real + ' "$@";; esac\n'
        f'echo "$*" >> {log}\n'
        f"echo '{FAKE_ERROR}' >&2\n"
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def _source_copy(tmp_path: Path) -> Path:
    """What setup.py reads, copied: the builds here must not write into the checkout."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "csrc", src / "csrc")
    shutil.copytree(ROOT / "snnkernels", src / "snnkernels", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return src


def _build_ext(folder: Path, env: dict[str, str], script: str = "setup.py") -> subprocess.CompletedProcess:
    env = dict(env, MAX_JOBS="1", SNNKERNELS_BUILD_CUDA="0")
    env.pop("TORCH_CUDA_ARCH_LIST", None)
    return subprocess.run(
        [sys.executable, script, "build_ext", "--build-lib", str(folder / "lib"), "--build-temp", str(folder / "tmp")],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def _std_flags(log: Path) -> set[str]:
    return {flag for line in log.read_text().splitlines() for flag in line.split() if flag.startswith("-std=")}


def test_flags_leave_the_standard_to_torch():
    for flags in (
        _native_sources.CXX_FLAGS,
        _native_sources.NVCC_FLAGS,
        _native_sources.CXX_DEBUG_FLAGS,
        _native_sources.NVCC_DEBUG_FLAGS,
    ):
        assert not [f for f in flags if "std=" in f], flags


@pytest.fixture(scope="module")
def failed_build(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, set[str]]:
    """setup.py build_ext (SNNKERNELS_BUILD_NATIVE=auto) with the failing stand-in compiler, and the standard
    torch gives a plain extension built the same way."""
    tmp_path = tmp_path_factory.mktemp("setup_build")
    compiler, log = _fake_compiler(tmp_path)
    env = dict(os.environ, CXX=compiler)
    env.pop("SNNKERNELS_BUILD_NATIVE", None)
    out = _build_ext(_source_copy(tmp_path), env)

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "plain.cpp").write_text("int plain() { return 0; }\n")
    (plain / "setup_plain.py").write_text(
        "from setuptools import setup\n"
        "from torch.utils.cpp_extension import BuildExtension, CppExtension\n"
        "setup(name='plain', ext_modules=[CppExtension('plain', ['plain.cpp'])],\n"
        "      cmdclass={'build_ext': BuildExtension})\n"
    )
    plain_log = plain / "compile_commands.log"
    _build_ext(plain, dict(env, CXX=_fake_compiler(plain)[0]), "setup_plain.py")
    torch_default = _std_flags(plain_log)
    assert len(torch_default) == 1, plain_log.read_text()
    return out, log, torch_default


def test_build_uses_torchs_cxx_standard(failed_build):
    out, log, torch_default = failed_build
    assert log.exists(), f"no compile ran:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert _std_flags(log) == torch_default, (log.read_text()[-2000:], torch_default)


def test_failed_build_fails_the_install_loudly(failed_build):
    out, _, torch_default = failed_build
    assert out.returncode != 0, "a failed native build let the install succeed"
    tail = out.stderr[out.stderr.rfind("FAILED") :]
    assert FAKE_ERROR in tail, out.stderr[-3000:]
    assert "SNNKERNELS_BUILD_NATIVE=0" in tail, tail
    assert f"C++ standard (torch's choice): {next(iter(torch_default))[len('-std=') :]}" in tail, tail


@pytest.mark.parametrize("mode", ["auto", "1"])
def test_no_torch_at_build_time(tmp_path, mode):
    """As in an isolated build: auto installs pure Python and says so loudly; 1 refuses."""
    src = _source_copy(tmp_path)
    blocker = tmp_path / "no_torch"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('no torch in this build environment')\n")
    env = dict(os.environ, PYTHONPATH=str(blocker), SNNKERNELS_BUILD_NATIVE=mode)
    out = _build_ext(src, env)
    assert "snnkernels._C is NOT built: torch is not importable" in out.stderr, out.stderr[-3000:]
    assert "--no-build-isolation" in out.stderr
    assert (out.returncode == 0) == (mode == "auto"), out.stderr[-3000:]
    assert not list(src.rglob("_C*.so"))
