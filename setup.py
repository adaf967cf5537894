"""Build script. Metadata lives in pyproject.toml; the package itself is pure Python (Triton kernels
are compiled at run time), so a plain install works on any machine, CPU-only included."""
from setuptools import setup

setup()
