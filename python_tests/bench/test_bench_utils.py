"""The benchmark's CPU timer counts page faults per call: a fresh mapping touched page by page must show
up, a call that touches nothing new must not (bench/NOTES.md, "CPU page faults")."""

from __future__ import annotations

import mmap

from bench.utils import time_fn

PAGES = 256


def _touch_fresh_pages() -> None:
    # a new anonymous mapping each call: every page is faulted in on its first write
    with mmap.mmap(-1, PAGES * mmap.PAGESIZE) as m:
        for i in range(PAGES):
            m[i * mmap.PAGESIZE] = 1


def test_cpu_timing_counts_page_faults():
    faulting = time_fn(_touch_fresh_pages, "cpu", min_reps=5, min_time_s=0.0)
    assert faulting.faults_per_call >= PAGES, faulting
    quiet = time_fn(lambda: None, "cpu", min_reps=5, min_time_s=0.0)
    assert quiet.faults_per_call < PAGES / 8, quiet
