"""Build script. Metadata lives in pyproject.toml.

The package is pure Python (the Triton kernels compile at run time), so a plain install works on any
machine. Ahead of time it also builds the native extension ``snnkernels._C`` from ``csrc/`` against the torch
it finds at build time:

- the CPU part wherever torch is importable at build time and a C++ compiler is found
  (install with ``pip install --no-build-isolation -e .`` so the build sees your torch);
- the CUDA part too when torch is a CUDA build and a CUDA toolkit is found (``CUDA_HOME``), for the
  architectures in ``TORCH_CUDA_ARCH_LIST`` (default "8.0;9.0+PTX"); no GPU is needed to build.

The C++ standard is torch's own choice (``torch.utils.cpp_extension`` adds the one its headers need).

``SNNKERNELS_BUILD_NATIVE`` (ENVs.md): ``auto`` (default) builds when torch and a compiler are there and
otherwise installs the pure-Python package with a warning; ``1`` makes a missing torch or compiler an error;
``0`` never builds. In both ``auto`` and ``1`` a build that starts and fails stops the install with the
compiler's errors and the ways out: a failed build never leaves a silent pure-Python install.
``SNNKERNELS_BUILD_CUDA=0`` builds the CPU part only. ``MAX_JOBS`` and ``DEBUG=1`` are honoured.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import threading

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
BUILD_NATIVE = os.environ.get("SNNKERNELS_BUILD_NATIVE", "auto")
if BUILD_NATIVE not in ("0", "1", "auto"):
    raise SystemExit(f"snnkernels setup: SNNKERNELS_BUILD_NATIVE must be 0, 1 or auto, got {BUILD_NATIVE!r}")
PURE_PYTHON_FIX = "SNNKERNELS_BUILD_NATIVE=0 installs without the extension (Triton / eager backends only)"


def _say(*lines: str) -> None:
    print("snnkernels setup: " + "\n    ".join(lines), file=sys.stderr, flush=True)


def _banner(lines: list[str]) -> str:
    rule = "=" * 100
    return "\n".join(
        [
            "",
            rule,
            *(f"snnkernels setup: {line}" if i == 0 else f"    {line}" for i, line in enumerate(lines)),
            rule,
            "",
        ]
    )


def _skip(reason: str, fixes: list[str]) -> tuple[list, dict]:
    """No build possible: an error under SNNKERNELS_BUILD_NATIVE=1, a loud warning under auto."""
    lines = [f"the native extension snnkernels._C is NOT built: {reason}.", "To build it:", *fixes]
    if BUILD_NATIVE == "1":
        raise SystemExit(_banner(lines + ["(SNNKERNELS_BUILD_NATIVE=1 makes this an error.)"]))
    print(
        _banner(
            lines
            + [
                "Installing the pure-Python package (Triton / eager backends only); "
                "`python -m snnkernels` shows what runs."
            ]
        ),
        file=sys.stderr,
        flush=True,
    )
    return [], {}


def _load(name: str):
    """snnkernels/<name>.py, loaded by path: the package itself must not be imported here."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "snnkernels", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCES = _load("_native_sources")
BUILD_LOG = _load("_build_log")


def native_extensions() -> tuple[list, dict]:
    if BUILD_NATIVE == "0":
        _say("SNNKERNELS_BUILD_NATIVE=0: pure-Python install (Triton / eager backends only)")
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as exc:
        return _skip(
            f"torch is not importable at build time ({exc}); pip's build isolation hides an installed torch",
            ["pip install --no-build-isolation [-e] .   (builds against the torch you run)"],
        )
    compiler = os.environ.get("CXX", "c++").split()[0]
    if shutil.which(compiler) is None:
        return _skip(
            f"no C++ compiler: {compiler!r} (CXX, default c++) is not on PATH",
            ["install g++ or clang++ (or set CXX), then reinstall"],
        )

    csrc = os.path.join(ROOT, "csrc")
    cpu_sources = [os.path.relpath(p, ROOT) for p in SOURCES.cpu_sources(csrc)]
    cuda_sources = [os.path.relpath(p, ROOT) for p in SOURCES.cuda_sources(csrc)]
    if not cpu_sources:
        return _skip(f"no C++ sources under {csrc}", ["build from a source checkout or an sdist (they carry csrc/)"])
    debug = os.environ.get("DEBUG", "0") == "1"
    cxx = SOURCES.CXX_DEBUG_FLAGS if debug else SOURCES.CXX_FLAGS
    include_dirs = [os.path.join(ROOT, "csrc", "include"), os.path.join(ROOT, "csrc")]
    with_cuda = (
        os.environ.get("SNNKERNELS_BUILD_CUDA", "1") != "0"
        and torch.version.cuda is not None
        and cpp_extension.CUDA_HOME is not None
        and bool(cuda_sources)
    )
    if with_cuda:
        # machine code for A100 / H100, plus sm_90 PTX that the driver compiles for newer GPUs (without it,
        # backend="native" fails there with "no kernel image")
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
        nvcc = SOURCES.NVCC_DEBUG_FLAGS if debug else SOURCES.NVCC_FLAGS
        ext = cpp_extension.CUDAExtension(
            "snnkernels._C",
            cpu_sources + cuda_sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx + ["-DSNNKERNELS_WITH_CUDA=1"], "nvcc": nvcc + ["-DSNNKERNELS_WITH_CUDA=1"]},
            extra_link_args=["-fopenmp"],
        )
        what = f"CPU and CUDA kernels for {os.environ['TORCH_CUDA_ARCH_LIST']}"
    else:
        ext = cpp_extension.CppExtension(
            "snnkernels._C",
            cpu_sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": list(cxx)},
            extra_link_args=["-fopenmp"],
        )
        what = "CPU kernels only (no CUDA torch build, no CUDA_HOME, or SNNKERNELS_BUILD_CUDA=0)"
    return [ext], {"build_ext": _loud_build_ext(cpp_extension.BuildExtension, torch.__version__, with_cuda, what)}


class _Tee:
    """Shows everything written to fds 1 and 2 (by this process and the compilers it starts) and keeps a copy,
    so that a failed build can name its compiler errors at the end of the output."""

    def __enter__(self) -> _Tee:
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        read_end, write_end = os.pipe()
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self._thread.start()
        return self

    def _pump(self, read_end: int) -> None:
        while chunk := os.read(read_end, 1 << 16):
            self._chunks.append(chunk)
            os.write(self._saved[1], chunk)
        os.close(read_end)

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        self._thread.join(timeout=10)  # a compiler daemon (sccache) may keep the pipe open
        for fd in self._saved:
            os.close(fd)

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")


def _loud_build_ext(base, torch_version: str, with_cuda: bool, what: str):
    """A build that fails stops the install with a summary of the compiler errors and the fixes."""

    class BuildExt(base):
        def run(self):
            _say(f"building snnkernels._C against torch {torch_version}: {what}")
            with _Tee() as tee:
                try:
                    super().run()
                    failure = None
                except Exception as exc:  # noqa: BLE001 - any compiler / linker failure
                    failure = exc
            if failure is None:
                return
            standards = re.findall(r"-std=(c\+\+\w+)", tee.text)
            lines = [
                f"building the native extension snnkernels._C against torch {torch_version} FAILED "
                f"({type(failure).__name__}: {failure}).",
                f"C++ standard (torch's choice): {standards[-1] if standards else 'unknown'}; compiler: "
                f"{os.environ.get('CXX', 'c++')}. The compiler's errors (full output above):",
                *(f"  {line}" for line in BUILD_LOG.error_summary(tee.text)),
                "Fixes: install a compiler that builds C++ for this torch (or set CXX), then reinstall;",
                *(["  SNNKERNELS_BUILD_CUDA=0 builds the CPU kernels only;"] if with_cuda else []),
                f"  {PURE_PYTHON_FIX}.",
            ]
            raise SystemExit(_banner(lines))

    return BuildExt.with_options(use_ninja=True)


ext_modules, cmdclass = native_extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
