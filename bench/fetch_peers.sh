#!/usr/bin/env bash
# Fetch the peer libraries the GPU machine cannot download (it has no network) into .whl/ (ignored by git):
# SpikingJelly 2.0.0 (a pure-Python wheel) and loguru, which its neuron code imports. A GPU session then
# names .whl in the device tool's `carry`, and bench/gpu_check.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl spikingjelly==2.0.0 loguru
ls -la .whl
