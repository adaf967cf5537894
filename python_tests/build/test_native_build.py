"""The native sources build everywhere they must, without a GPU:

- every CUDA source compiles with nvcc for sm_80 and sm_90 (the files are torch-free, so a CPU torch is
  enough);
- the kernel header compiles through NVRTC with exactly the name expressions the CuPy path asks for;
- the torch-free CPU core passes its C++ tests (CMake + CTest);
- the just-in-time build (ninja) builds, loads and runs only when asked, and is cached.

Each test skips with the reason when its tool is missing; CI installs all three (nvcc is on the machine,
NVRTC comes from the nvidia-cuda-nvrtc wheel, cmake and ninja are on the machine / in the venv).
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from snnkernels.surrogate import SURROGATE_IDS

from utils import HIDE_NATIVE_EXTENSION

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"


# CUDA instantiations that spill today (mangled-name pattern -> why; bench/NOTES.md "CUDA spills: the 64-bit
# division subroutine", "The last CUDA spills"). None since 2026-12-07. A pattern that no longer matches a spill
# fails the test too: drop it then.
KNOWN_CUDA_SPILLS: dict[str, str] = {}


def test_cuda_sources_compile_for_sm80_and_sm90(tmp_path):
    """Every CUDA source compiles for sm_80 and sm_90, and no instantiation spills (ptxas -v) beyond
    KNOWN_CUDA_SPILLS."""
    from bench.static_report import parse_ptxas

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found")
    sources = sorted(CSRC.glob("**/*.cu"))
    assert sources, "no CUDA sources found"

    def compile_one(src: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                nvcc,
                "-c",
                "-std=c++17",
                "-O3",
                "-fmad=false",
                f"-I{CSRC / 'include'}",
                f"-I{CSRC}",
                "-gencode",
                "arch=compute_80,code=sm_80",
                "-gencode",
                "arch=compute_90,code=sm_90",
                "-Xptxas",
                "-v",
                str(src),
                "-o",
                str(tmp_path / (src.name + ".o")),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(compile_one, sources))
    failures = [(s.name, r.stderr[-3000:]) for s, r in zip(sources, results, strict=True) if r.returncode != 0]
    assert not failures, failures
    rows = [row for s, r in zip(sources, results, strict=True) for row in parse_ptxas(r.stderr, s.name)]
    assert len(rows) > 100, f"ptxas -v reported {len(rows)} functions"
    spills = [r for r in rows if r.get("spill_stores") or r.get("spill_loads")]
    unknown = [
        (r["source"], r["mangled"]) for r in spills if not any(re.search(p, r["mangled"]) for p in KNOWN_CUDA_SPILLS)
    ]
    assert not unknown, unknown
    stale = [p for p in KNOWN_CUDA_SPILLS if not any(re.search(p, r["mangled"]) for r in spills)]
    assert not stale, f"no longer spill (drop them from KNOWN_CUDA_SPILLS): {stale}"
    for src in sources:
        cubins = (
            subprocess.run(["cuobjdump", "-lelf", str(tmp_path / (src.name + ".o"))], capture_output=True, text=True)
            if shutil.which("cuobjdump")
            else None
        )
        if cubins is not None and cubins.returncode == 0:
            assert "sm_80" in cubins.stdout and "sm_90" in cubins.stdout, cubins.stdout


def _libnvrtc() -> ctypes.CDLL | None:
    """libnvrtc from the nvidia-cuda-nvrtc wheel (namespace package nvidia.cu13 / nvidia.cuda_nvrtc)."""
    candidates = []
    for package in ("nvidia.cu13", "nvidia.cuda_nvrtc"):
        try:
            module = __import__(package, fromlist=["x"])
        except ImportError:
            continue
        for folder in getattr(module, "__path__", []):
            candidates += glob.glob(os.path.join(folder, "lib", "libnvrtc*.so*"))
    # libnvrtc dlopens its builtins library by name: load that first, globally, from the same folder
    for path in sorted(c for c in candidates if "builtins" in c and ".alt." not in c):
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    for path in sorted(c for c in candidates if "builtins" not in c and ".alt." not in c):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _nvrtc_compile(lib: ctypes.CDLL, source: str, options: list[str], names: list[str]) -> tuple[str, dict[str, str]]:
    """The PTX of ``source`` and the lowered (mangled) name of each name expression."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"leaky.cu", 0, None, None) == 0
    for name in names:
        assert lib.nvrtcAddNameExpression(prog, name.encode()) == 0, name
    opts = [o.encode() for o in options]
    result = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert result == 0, f"NVRTC failed ({options[-1]}):\n{log.value.decode()[-4000:]}"
    lowered_names = {}
    for name in names:  # every requested instantiation exists in the module
        lowered = ctypes.c_char_p()
        assert lib.nvrtcGetLoweredName(prog, name.encode(), ctypes.byref(lowered)) == 0, name
        assert lowered.value, name
        lowered_names[name] = lowered.value.decode()
    assert lib.nvrtcGetPTXSize(prog, ctypes.byref(size)) == 0
    ptx = ctypes.create_string_buffer(size.value)
    assert lib.nvrtcGetPTX(prog, ptx) == 0
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode(), lowered_names


def ptx_param_types(ptx: str, entry: str) -> list[str]:
    """The PTX types (``u64``, ``f32``, ``u32``, ...) of kernel ``entry``'s parameters, in order."""
    m = re.search(rf"\.entry {re.escape(entry)}\((.*?)\)", ptx, re.DOTALL)
    assert m, f"entry {entry} not in the PTX"
    return re.findall(r"\.param \.(\w+)", m.group(1))


# numpy scalar type of a CuPy launch argument -> the PTX type of the kernel parameter that must receive it
_PTX_TYPE = {np.uint64: "u64", np.int64: "u64", np.float32: "f32", np.int32: "u32", np.uint32: "u32"}


def launch_mismatches(args: list, params: list[str]) -> list[str]:
    """CuPy passes each argument with its numpy type's size and bits: one per kernel parameter, of its type."""
    got = [_PTX_TYPE.get(type(a), type(a).__name__) for a in args]
    return [] if got == params else [f"launch arguments {got} != kernel parameters {params}"]


@pytest.mark.parametrize("arch", [80, 90])
def test_cupy_kernels_compile_with_nvrtc(arch):
    lib = _libnvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (pip install nvidia-cuda-nvrtc==13.0.88)")
    from snnkernels.ops import leaky_cupy

    flag = leaky_cupy.FLAG
    names = []
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        wide = 16 // torch.empty(0, dtype=dtype).element_size()
        fwd = flag["hard_reset"] | flag["training"] | flag["store_final"] | flag["vectorized"]
        names.append(leaky_cupy.kernel_name(False, dtype, fwd, wide))
        names.append(leaky_cupy.kernel_name(False, dtype, fwd | flag["store_v_seq"], wide))  # the membrane sequence
        names.append(
            leaky_cupy.kernel_name(
                False, dtype, flag["has_v_init"] | flag["decay_t"] | flag["strict"] | flag["vectorized"], 1
            )
        )
    everything = sum(flag.values())
    for sg in sorted(SURROGATE_IDS):  # every surrogate through NVRTC, as CuPy compiles it
        bwd = flag["vectorized"] | (flag["hard_reset"] if sg % 2 else flag["detach_reset"])
        names.append(leaky_cupy.kernel_name(True, torch.float32, bwd, 2, sg))
    names.append(leaky_cupy.kernel_name(True, torch.bfloat16, everything, 1, 1))
    names.append(leaky_cupy.kernel_name(True, torch.float16, everything, 2, 2))
    options = list(leaky_cupy.nvrtc_options()) + [f"--gpu-architecture=sm_{arch}"]
    _nvrtc_compile(lib, '#include "leaky/leaky_kernel.cuh"\n', options, names)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cupy_launch_arguments_match_the_kernels(dtype):
    """The arguments CuPy's launchers build (built on CPU tensors, not launched) have the count and the C types
    of the compiled kernels' parameters: a wrong count or a double for a float would reach the kernel unchecked."""
    lib = _libnvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (pip install nvidia-cuda-nvrtc==13.0.88)")
    from snnkernels.ops import leaky_cupy
    from snnkernels.ops.leaky_settings import BWD_ARGS, FWD_ARGS, positional

    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 3, 4, 7, generator=g).to(dtype)
    coefficient = torch.rand(4, generator=g)
    settings = dict(
        v_init=torch.randn(3, 4, 7, generator=g), decay_t=coefficient, gain_t=None, bias_t=coefficient,
        decay=0.0, gain=0.7, bias=0.0, v_threshold=1.0, v_reset=0.1, v_init_value=0.0, hard_reset=True,
        strict=False, detach_reset=True, surrogate_id=3, surrogate_param=1.5, chunk=leaky_cupy.DEFAULT_CHUNK,
    )  # fmt: skip
    (_, _, checkpoints, _), fwd = leaky_cupy.fwd_launch(
        *positional(FWD_ARGS, x=x, training=True, store_final_state=True, store_v_seq=True, **settings)
    )
    grads = dict(grad_spikes=torch.randn_like(x), grad_v_final=None, grad_v_seq=torch.randn(x.shape, generator=g))
    needs = dict(need_grad_v_init=True, need_grad_decay=True, need_grad_gain=False, need_grad_bias=True)
    _, bwd = leaky_cupy.bwd_launch(*positional(BWD_ARGS, x=x, checkpoints=checkpoints, **settings, **grads, **needs))
    ptx, lowered = _nvrtc_compile(
        lib,
        '#include "leaky/leaky_kernel.cuh"\n',
        list(leaky_cupy.nvrtc_options()) + ["--gpu-architecture=sm_90"],
        [fwd.name, bwd.name],
    )
    for launch in (fwd, bwd):
        assert launch_mismatches(launch.args, ptx_param_types(ptx, lowered[launch.name])) == []
    # the comparison fails on a dropped argument and on a double where the kernel takes a float
    params = ptx_param_types(ptx, lowered[fwd.name])
    assert launch_mismatches(fwd.args[:-1], params)
    assert launch_mismatches([np.float64(a) if type(a) is np.float32 else a for a in fwd.args], params)


def _has_ninja() -> bool:
    """ninja on PATH or in the venv (the pip-installed one)."""
    return shutil.which("ninja") is not None or os.path.exists(os.path.join(sys.prefix, "bin", "ninja"))


def _venv_env(**extra: str) -> dict[str, str]:
    """The environment with the venv's bin/ (cmake, ninja) first on PATH."""
    return dict(
        os.environ, PATH=os.pathsep.join([os.path.join(sys.prefix, "bin"), os.environ.get("PATH", "")]), **extra
    )


def test_cpu_core_ctest(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found")
    generator = ["-G", "Ninja"] if _has_ninja() else []
    env = _venv_env()
    build = tmp_path / "build"
    steps = [
        [cmake, "-S", str(ROOT), "-B", str(build), *generator, "-DSNNKERNELS_BUILD_TORCH_EXTENSION=OFF"],
        [cmake, "--build", str(build), "-j", str(os.cpu_count() or 2)],
        ["ctest", "--test-dir", str(build), "--output-on-failure"],
    ]
    for step in steps:
        out = subprocess.run(step, capture_output=True, text=True, env=env, timeout=1200)
        assert out.returncode == 0, f"{' '.join(step)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert "100% tests passed" in out.stdout, out.stdout


_JIT_CHECK = (
    HIDE_NATIVE_EXTENSION
    + """
import os, torch
def tree():
    return sorted((d, f, os.stat(os.path.join(d, f)).st_mtime_ns)
                  for d, _, fs in os.walk(os.environ["TORCH_EXTENSIONS_DIR"]) for f in fs)
before = tree()
import snnkernels
from snnkernels import _ext, functional as F
from snnkernels.backends import backend_problem
assert tree() == before, "importing snnkernels built something"
assert backend_problem("native", torch.empty(1)) is not None  # not built, and not built by asking
os.environ["SNNKERNELS_JIT"] = "1"
assert _ext.load_native(allow_jit=True), "the JIT build did not load"
assert _ext.native_status() == (True, "snnkernels._C loaded (just-in-time build)"), _ext.native_status()
x = (2 * torch.rand(5, 3, 70)).requires_grad_()
got = F.multistep_lif(x, tau=2.0, backend="native")
want = F.multistep_lif(x, tau=2.0, backend="torch")
assert torch.equal(got, want)
g = torch.randn_like(got)
(gx,) = torch.autograd.grad(got, x, g)
(wx,) = torch.autograd.grad(want, x, g)
torch.testing.assert_close(gx, wx, atol=1e-6, rtol=1e-5)
print("jit ok")
"""
)


def test_jit_build_with_ninja(tmp_path):
    """The just-in-time path for real, in a fresh process where the ahead-of-time extension is hidden:
    importing snnkernels builds nothing; SNNKERNELS_JIT=1 plus a request for the native backend builds the
    same csrc/ files with ninja into TORCH_EXTENSIONS_DIR, and the ops it registers give the reference's
    spikes and gradients."""
    if not _has_ninja():
        pytest.skip("ninja not found")
    env = _venv_env(TORCH_EXTENSIONS_DIR=str(tmp_path), SNNKERNELS_JIT="0", MAX_JOBS=str(os.cpu_count() or 2))
    env.pop("TRITON_INTERPRET", None)
    built = None
    for timeout in (1500, 600):  # the build, then a second process that must load the cached library
        out = subprocess.run(
            [sys.executable, "-c", _JIT_CHECK], capture_output=True, text=True, env=env, timeout=timeout
        )
        assert out.returncode == 0 and "jit ok" in out.stdout, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        (library,) = glob.glob(str(tmp_path / "snnkernels_jit" / "*.so"))
        if built is None:
            built = os.stat(library).st_mtime_ns
    assert os.stat(library).st_mtime_ns == built, "the second JIT load rebuilt the extension"
