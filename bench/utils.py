"""Timing, memory and byte accounting for the benchmarks.

Timing: on CUDA ``triton.testing.do_bench`` (warm-up, then the median and the 20th/80th percentiles of
many runs timed with CUDA events, L2 flushed between runs); on the CPU ``time.perf_counter`` around each
run after warm-up, at least ``min_reps`` runs and ``min_time_s`` seconds, median and 20th/80th percentiles.
Bandwidth is reported against the measured device-to-device copy bandwidth (bytes read + written per
second of a large ``copy_``, median), the practical ceiling for these memory-bound ops.
"""

from __future__ import annotations

import functools
import math
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

MODES = ("inference", "fwd", "fwd+bwd")
SCHEDULES = ("floor", "recompute", "save_h")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else the processor or the architecture: results files name their
    machine by it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class Timing:
    p50_ms: float
    p20_ms: float
    p80_ms: float
    reps: int | None = None
    # CPU only: minor page faults per timed call (a fresh tensor faulted in page by page; bench/NOTES.md,
    # "CPU page faults"), so that a slow row shows whether the allocator, not the kernel, cost the time
    faults_per_call: float | None = None


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_fn(
    fn: Callable[[], object],
    device: str,
    *,
    warmup_ms: float = 25,
    rep_ms: float = 100,
    min_reps: int = 5,
    min_time_s: float = 0.2,
    max_reps: int = 200,
    grad_to_none: list[torch.Tensor] | None = None,
) -> Timing:
    """Median / p20 / p80 time of ``fn()`` in milliseconds.

    CUDA: ``do_bench(fn, warmup_ms, rep_ms)``. CPU: two warm-up calls, then runs until both ``min_reps``
    and ``min_time_s`` are reached (at most ``max_reps``); ``.grad`` of ``grad_to_none`` is cleared
    before each run, outside the timed region.
    """
    if device == "cuda":
        import triton.testing

        p50, p20, p80 = triton.testing.do_bench(
            fn, warmup=warmup_ms, rep=rep_ms, grad_to_none=grad_to_none, quantiles=[0.5, 0.2, 0.8]
        )
        return Timing(p50, p20, p80)
    for _ in range(2):
        fn()
    samples: list[float] = []
    faults = 0
    started = time.perf_counter()
    while len(samples) < max_reps and (len(samples) < min_reps or time.perf_counter() - started < min_time_s):
        for t in grad_to_none or ():
            t.grad = None
        minflt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - minflt
    q = statistics.quantiles(samples, n=10, method="inclusive")  # deciles: q[1] = p20, q[7] = p80
    return Timing(statistics.median(samples), q[1], q[7], len(samples), faults / len(samples))


def copy_bandwidth_gbps(device: str, nbytes: int | None = None) -> float:
    """Measured device-to-device copy bandwidth, bytes read + written per second, in GB/s (median)."""
    nbytes = nbytes or (1 << 30 if device == "cuda" else 1 << 28)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    t = time_fn(functools.partial(dst.copy_, src), device, min_reps=10, min_time_s=0.5)
    del src, dst
    if device == "cuda":
        torch.cuda.empty_cache()
    return 2 * nbytes / (t.p50_ms * 1e-3) / 1e9


def peak_memory_mb(fn: Callable[[], object], device: str) -> float | None:
    """Peak memory allocated during one call of ``fn`` beyond what was allocated before it, in MiB
    (outputs, saved tensors and temporaries; the inputs are not counted). CUDA only: None on the CPU."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def num_checkpoints(T: int, chunk: int) -> int:
    """Rows of fp32 checkpoints the recompute schedule writes: one per chunk after the first."""
    return max(math.ceil(T / chunk) - 1, 0)


def lif_bytes(
    schedule: str, mode: str, T: int, N: int, elem: int, chunk: int = 8, learned: int = 0, packed: bool = False
) -> int:
    """Bytes a multi-step neuron op must move from / to device memory for ``mode`` under ``schedule``.

    T steps, N neurons per step, e = ``elem`` = bytes per element of x, spikes and both gradients (the
    input dtype); state and checkpoints are fp32 (4 B). Per neuron-step terms, then the N-sized ones:

    - ``"floor"``: what any schedule pays: forward reads x, writes s (2e); backward reads dS, writes dX
      (2e). Used for the eager / torch.compile rows, whose real traffic has no closed form.
    - ``"recompute"`` (snnkernels' fused kernels; ``kernels/triton/leaky.py``): the training forward reads
      x, writes s (2e) and an fp32 checkpoint of v every ``chunk`` steps, none for the first chunk
      (4 * N * (ceil(T / chunk) - 1)); the backward re-reads x, reads dS, writes dX (3e) and reads the
      checkpoints. Inference writes no checkpoint (2e). Each learned per-channel coefficient
      (``learned``) adds a per-neuron fp32 partial sum written by the backward and read by its
      reduction: 8 * N.
    - ``"save_h"`` (SpikingJelly 2.0's Triton and CUDA kernels, store_v_seq=False): every forward,
      inference included, reads x, writes s and the fp32 pre-reset potential h (2e + 4); the backward
      reads dS and h and writes dX (2e + 4): 24 B per neuron-step in fp32. N-sized: the forward fills,
      then reads v_0 and writes v_T (12 N); the backward fills a zero dL/dv_T, reads it and writes
      dL/dv_0 (12 N).

    ``packed`` (``lif_packed``), any schedule: the forward, inference included, also writes the spikes at 1 bit
    each (ceil(T * N / 8)).

    Modes: ``"inference"`` (no_grad forward), ``"fwd"`` (training forward), ``"fwd+bwd"``.
    """
    if schedule not in SCHEDULES or mode not in MODES:
        raise ValueError(f"schedule {schedule!r} / mode {mode!r}")
    steps = T * N
    if schedule == "floor":
        fwd, bwd, inference = 2 * elem * steps, 2 * elem * steps, 2 * elem * steps
    elif schedule == "recompute":
        ckpt = 4 * N * num_checkpoints(T, chunk)
        inference = 2 * elem * steps
        fwd, bwd = 2 * elem * steps + ckpt, 3 * elem * steps + ckpt + 8 * N * learned
    else:
        fwd = inference = (2 * elem + 4) * steps + 12 * N
        bwd = (2 * elem + 4) * steps + 12 * N
    if packed:
        fwd, inference = fwd + math.ceil(steps / 8), inference + math.ceil(steps / 8)
    if mode == "inference":
        return inference
    return fwd if mode == "fwd" else fwd + bwd
