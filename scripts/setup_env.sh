#!/usr/bin/env bash
# Create (or update) .venv with the pinned development environment and snnkernels installed editable.
# Idempotent: a second run only checks the pins. Usage: bash scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
# SpikingJelly 2.0 for the drop-in parity tests and the peer benchmark: its neuron code needs only torch,
# numpy and loguru (its declared torchvision/torchaudio/tensorboard pins would pull a CUDA torch).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps spikingjelly==2.0.0 loguru
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
.venv/bin/python -c "
import snnkernels, torch, triton
from snnkernels import _ext
print('snnkernels', snnkernels.__version__, '| torch', torch.__version__, '| triton', triton.__version__)
_ext.load_native()
print('native extension:', _ext.native_status()[1])"
