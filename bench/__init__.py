"""Benchmark harness of snnkernels (not part of the installed package): ``python -m bench.run``."""
