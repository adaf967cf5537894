"""CuPy implementation of the leaky-neuron ops: the CUDA kernels of csrc/leaky/leaky_kernel.cuh compiled at
run time by NVRTC (``cupy.RawModule``), for users without a CUDA toolkit or a built extension.

Registers ``snnkernels::leaky_fwd_cupy`` / ``leaky_bwd_cupy`` for CUDA tensors. Every option is fixed at
compile time (like the Triton constexprs), one module per instantiation and device, cached. Torch tensors
are handed to the kernels by device pointer (zero copy: no CuPy array is made, so bf16 works although
CuPy has no bf16 dtype), on torch's current stream. The charge is compiled with ``-fmad=false`` (and the
kernel uses explicitly rounded ops) so the spikes equal the other backends' bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .. import _native_sources
from .layout import match_layout
from .leaky import CHECKPOINT_CHUNK, define_leaky_ops, leaky_entries, neurons_per_step, new_bwd_outputs, new_fwd_outputs
from .leaky_settings import ALL_FLAGS, BWD_ARGS, FLAG, FWD_ARGS, Bound, bind, flag_word, kernel_scalars

__all__ = [
    "DEFAULT_CHUNK",
    "Launch",
    "availability_problem",
    "bwd_launch",
    "forward_op",
    "fwd_launch",
    "kernel_name",
    "nvrtc_options",
]

DEFAULT_CHUNK = CHECKPOINT_CHUNK  # recompute granularity of the backward (ops/leaky.py)
THREADS = 256  # csrc: kLeakyMaxThreads
_ELEMENT = {torch.float32: "float", torch.float16: "snnk::half_t", torch.bfloat16: "snnk::bf16_t"}
_ELEMENT_BYTES = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}
_CACHE: dict[tuple[int, str], object] = {}


def availability_problem() -> str | None:
    """Why the CuPy path cannot run here, or None."""
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not importable ({exc!r}); pip install cupy-cuda13x (or cupy-cuda12x)"
    try:
        if not cupy.cuda.is_available():
            return "CuPy sees no CUDA device"
    except Exception as exc:  # noqa: BLE001 - CuPy raises driver errors of several types
        return f"CuPy cannot reach the CUDA driver ({exc!r})"
    try:
        _native_sources.csrc_dir()
    except FileNotFoundError as exc:
        return str(exc)
    return None


def nvrtc_options() -> tuple[str, ...]:
    root = _native_sources.csrc_dir()
    return (f"-I{root}/include", f"-I{root}", "--std=c++17", "-fmad=false")


def kernel_name(
    backward: bool, dtype: torch.dtype, flags: int, vec: int, surrogate_id: int = -1, chunk: int = DEFAULT_CHUNK
) -> str:
    """The C++ name expression of one instantiation (every option fixed: STATIC_MASK = all bits)."""
    if backward:
        return f"snnk::leaky_bwd_kernel<{_ELEMENT[dtype]}, {surrogate_id}, {chunk}, {vec}, {ALL_FLAGS}u, {flags}u>"
    return f"snnk::leaky_fwd_kernel<{_ELEMENT[dtype]}, {chunk}, {vec}, {ALL_FLAGS}u, {flags}u>"


def _kernel(name: str, device: torch.device):
    import cupy

    key = (device.index, name)
    if key not in _CACHE:
        with cupy.cuda.Device(device.index):
            module = cupy.RawModule(
                code='#include "leaky/leaky_kernel.cuh"\n', options=nvrtc_options(), name_expressions=[name]
            )
            _CACHE[key] = module.get_function(name)
    return _CACHE[key]


def _launch(launch: Launch, device: torch.device) -> None:
    import cupy

    vectors = -(-launch.n // launch.vec)  # ceil(n / vec): each thread handles vec neurons
    grid = -(-vectors // THREADS)  # ceil(vectors / THREADS)
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream, device.index)
    with cupy.cuda.Device(device.index):
        _kernel(launch.name, device)((grid,), (THREADS,), tuple(launch.args), stream=stream)


def _ptr(t: torch.Tensor | None) -> np.uint64:
    return np.uint64(0 if t is None or t.numel() == 0 else t.data_ptr())


def _vec(n: int, tensors: list[torch.Tensor | None], wide: int) -> int:
    """Wide accesses when N % VEC == 0 and every pointer is 16-byte aligned; else one neuron per thread."""
    aligned = all(t is None or t.numel() == 0 or t.data_ptr() % 16 == 0 for t in tensors)
    return wide if n % wide == 0 and aligned else 1


def _channel_dims(x: torch.Tensor, *coefficients: torch.Tensor | None) -> tuple[int, int]:
    c = max([1] + [t.numel() for t in coefficients if t is not None])
    return (x.stride(2) if c > 1 else 1), c


def _sizes(x, decay_t, gain_t, bias_t, chunk):
    spatial, channels = _channel_dims(x, decay_t, gain_t, bias_t)
    return [np.int64(x.shape[0]), np.int64(neurons_per_step(x)), np.int64(spatial), np.int64(channels)], np.int64(chunk)


_NUMPY_TYPE = {"float": np.float32, "int": np.int32}  # the kernels' C types (CuPy sends a Python float as double)


def _kernel_scalars(a: Bound, kernel: str) -> list:
    """The settings the kernels take as values, in their parameter order (leaky_settings.kernel_scalars, the list
    the C++ kernels' SNNK_LEAKY_*_KERNEL_SCALARS are generated from)."""
    values = []
    for setting in kernel_scalars(kernel):
        c_type = _NUMPY_TYPE[setting.type]
        values.append(c_type(getattr(a, setting.name)))
    return values


class Launch(NamedTuple):
    """One kernel launch, built without launching (so that the CPU tests can check the arguments' C types
    against the compiled kernel's parameters): the kernel's name expression, neurons, neurons per thread and
    the arguments in the kernel's parameter order."""

    name: str
    n: int
    vec: int
    args: list


def fwd_launch(*args, **kwargs) -> tuple[tuple, Launch | None]:
    """The forward's outputs (allocated) and its launch; None when there are no neurons."""
    a = bind(FWD_ARGS, args, kwargs)
    flags = flag_word(FWD_ARGS, "fwd", vars(a)) | FLAG["vectorized"]
    n = neurons_per_step(a.x)
    spikes, v_final, ckpt, v_seq = outputs = new_fwd_outputs(
        a.x, a.training, a.store_final_state, a.chunk, a.store_v_seq
    )
    if n == 0:
        return outputs, None
    vec = _vec(n, [a.x, spikes, a.v_init, v_final, ckpt, v_seq], 16 // _ELEMENT_BYTES[a.x.dtype])
    sizes, chunk_arg = _sizes(a.x, a.decay_t, a.gain_t, a.bias_t, a.chunk)
    launch_args = [
        _ptr(a.x),
        _ptr(a.v_init),
        _ptr(a.decay_t),
        _ptr(a.gain_t),
        _ptr(a.bias_t),
        _ptr(spikes),
        _ptr(v_final),
        _ptr(ckpt),
        _ptr(v_seq),
        *sizes,
        *_kernel_scalars(a, "fwd"),
        chunk_arg,
        np.uint32(flags),
    ]
    return outputs, Launch(kernel_name(False, a.x.dtype, flags, vec), n, vec, launch_args)


def bwd_launch(*args, **kwargs) -> tuple[tuple, Launch | None]:
    """The backward's outputs (allocated) and its launch; None when there are no neurons."""
    a = bind(BWD_ARGS, args, kwargs)
    flags = flag_word(BWD_ARGS, "bwd", vars(a)) | FLAG["vectorized"]
    n = neurons_per_step(a.x)
    # walked as x's [T, N]
    grad_v_seq = None if a.grad_v_seq is None else match_layout(a.grad_v_seq.to(torch.float32), a.x)
    grad_x, grad_v_init, g_decay, g_gain, g_bias = new_bwd_outputs(
        a.x, a.need_grad_v_init, a.need_grad_decay, a.need_grad_gain, a.need_grad_bias
    )
    outputs = grad_x, grad_v_init, g_decay, g_gain, g_bias
    if n == 0:
        return outputs, None
    vec = _vec(
        n,
        [
            a.grad_spikes,
            a.grad_v_final,
            a.x,
            a.v_init,
            a.checkpoints,
            grad_x,
            grad_v_init,
            g_decay,
            g_gain,
            g_bias,
            grad_v_seq,
        ],
        2,
    )
    sizes, chunk_arg = _sizes(a.x, a.decay_t, a.gain_t, a.bias_t, a.chunk)
    launch_args = [
        _ptr(a.grad_spikes),
        _ptr(a.grad_v_final),
        _ptr(a.x),
        _ptr(a.v_init),
        _ptr(a.checkpoints),
        _ptr(a.decay_t),
        _ptr(a.gain_t),
        _ptr(a.bias_t),
        _ptr(grad_x),
        _ptr(grad_v_init),
        _ptr(g_decay),
        _ptr(g_gain),
        _ptr(g_bias),
        _ptr(grad_v_seq),
        *sizes,
        *_kernel_scalars(a, "bwd"),
        chunk_arg,
        np.uint32(flags),
    ]
    return outputs, Launch(kernel_name(True, a.x.dtype, flags, vec, a.surrogate_id), n, vec, launch_args)


def _run(plan: tuple[tuple, Launch | None]) -> tuple:
    outputs, launch = plan
    if launch is not None:
        _launch(launch, outputs[0].device)  # the first output is allocated on x's device
    return outputs


def _fwd_impl(*args, **kwargs):
    return _run(fwd_launch(*args, **kwargs))


def _bwd_impl(*args, **kwargs):
    return _run(bwd_launch(*args, **kwargs))


leaky_fwd_cupy, leaky_bwd_cupy = define_leaky_ops("cupy", _fwd_impl, _bwd_impl, ("CUDA",))


def forward_op():
    return leaky_fwd_cupy


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


OPS = leaky_entries("cupy", __name__, ("cuda",))
