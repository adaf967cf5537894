"""Timing, memory and byte accounting for the benchmarks.

Timing: on CUDA ``triton.testing.do_bench`` (warm-up, then the median and the 20th/80th percentiles of
many runs, timed with CUDA events); on the CPU ``time.perf_counter`` around each run after warm-up,
median of ``reps`` runs. Bandwidth is reported against the measured device-to-device copy bandwidth
(bytes read + written per second of a large ``copy_``), the practical ceiling for these memory-bound ops.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    p50_ms: float
    p20_ms: float
    p80_ms: float


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], device: str, reps: int = 20, warmup: int = 3,
            grad_to_none: list[torch.Tensor] | None = None) -> Timing:
    """Median / p20 / p80 wall time of ``fn()`` in milliseconds."""
    if device == "cuda":
        import triton.testing

        p50, p20, p80 = triton.testing.do_bench(fn, warmup=50, rep=400, grad_to_none=grad_to_none,
                                                quantiles=[0.5, 0.2, 0.8])
        return Timing(p50, p20, p80)
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        for t in grad_to_none or ():
            t.grad = None
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    q = statistics.quantiles(samples, n=10) if len(samples) >= 2 else samples * 9
    return Timing(statistics.median(samples), q[1], q[7])


def copy_bandwidth_gbps(device: str, nbytes: int | None = None) -> float:
    """Measured device-to-device copy bandwidth, bytes read + written per second, in GB/s."""
    nbytes = nbytes or (1 << 30 if device == "cuda" else 1 << 28)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), device, reps=30)
    return 2 * nbytes / (t.p50_ms * 1e-3) / 1e9


def peak_memory_mb(fn: Callable[[], object], device: str) -> float | None:
    """Peak memory allocated during one call beyond what was allocated before it (CUDA only)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def lif_bytes(schedule: str, mode: str, T: int, N: int, elem: int, chunk: int = 8) -> int:
    """Bytes a neuron op must move for ``mode`` under a memory ``schedule``.

    Schedules (per neuron and time step; e = element size of x, spikes and gradients):

    - ``"floor"``: read x, write s (forward); read dS, write dX (backward): 2e + 2e. Any schedule pays it.
    - ``"recompute"`` (snnkernels): forward x, s plus an fp32 checkpoint every ``chunk`` steps (none for
      the first chunk); backward x, dS, dX plus the checkpoint reads.
    - ``"save_h"`` (SpikingJelly's Triton/CUDA with store_v_seq=False): forward x, s, h (fp32 for its
      native kernels, e for its Triton kernels; counted as 4 here); backward dS, h, dX.

    Modes: ``"inference"`` (forward without saving), ``"fwd"`` (training forward), ``"fwd+bwd"``.
    """
    steps = T * N
    ckpt = 4 * N * max(math.ceil(T / chunk) - 1, 0)
    if schedule == "floor":
        fwd, bwd = 2 * elem * steps, 2 * elem * steps
    elif schedule == "recompute":
        fwd, bwd = 2 * elem * steps + ckpt, 3 * elem * steps + ckpt
    elif schedule == "save_h":
        fwd, bwd = (2 * elem + 4) * steps, (2 * elem + 4) * steps
    else:
        raise ValueError(schedule)
    if mode == "inference":
        return 2 * elem * steps
    return fwd if mode == "fwd" else fwd + bwd
