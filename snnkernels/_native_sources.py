"""Where the native sources are and which files form the extension (shared by setup.py and the JIT build).
Torch-free and import-free, so setup.py can load it by path before anything is installed."""

from __future__ import annotations

import glob
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def csrc_dir() -> str:
    """csrc/ of a source checkout (editable installs and the repository itself)."""
    path = os.path.join(os.path.dirname(PACKAGE_DIR), "csrc")
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"native sources not found at {path}: the native JIT and CuPy paths need a source checkout "
            "(pip install -e .)"
        )
    return path


def _find(root: str, pattern: str) -> list[str]:
    return sorted(glob.glob(os.path.join(root, pattern), recursive=True))


def cpu_sources(root: str) -> list[str]:
    return [p for p in _find(root, "**/*.cpp") if f"{os.sep}tests{os.sep}" not in p and not p.endswith("_cuda.cpp")]


def cuda_sources(root: str) -> list[str]:
    return [p for p in _find(root, "**/*.cu") + _find(root, "**/*_cuda.cpp") if f"{os.sep}tests{os.sep}" not in p]


# No -std: torch.utils.cpp_extension adds the C++ standard that the installed torch's headers need (C++17
# for torch 2.11, C++20 for 2.13 and 2.14, whose headers refuse C++17), for the host compiler and nvcc
# alike, in setup.py's build and in the JIT build. A pinned standard breaks the build on one side of that line.
CXX_FLAGS = ["-O3", "-ffp-contract=off", "-fopenmp"]
NVCC_FLAGS = ["-O3", "-fmad=false", "--expt-relaxed-constexpr", "-lineinfo"]
CXX_DEBUG_FLAGS = ["-O0", "-g", "-ffp-contract=off", "-fopenmp"]
NVCC_DEBUG_FLAGS = ["-O0", "-G", "-fmad=false", "--expt-relaxed-constexpr"]
