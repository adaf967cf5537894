#!/usr/bin/env bash
# Fetch the peer libraries the GPU machine cannot download (it has no network) into .whl/ (ignored by git):
# SpikingJelly 2.0.0 and loguru, which its neuron code imports (its other declared dependencies are not
# needed by the neuron code; torch, numpy and tqdm are on the GPU image). Both are pure-Python wheels,
# checked below, so the Python 3.12 of the GPU machine can use them. A GPU session then names .whl in the
# device tool's `carry`, and bench/gpu_check.sh installs them with --no-index --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl spikingjelly==2.0.0 loguru
for w in .whl/spikingjelly-2.0.0-*.whl .whl/loguru-*.whl; do
    [ -f "$w" ] || { echo "missing: $w" >&2; exit 1; }
    case "$w" in
        *-py3-none-any.whl) echo "ok (pure Python): $w ($(du -h "$w" | cut -f1))" ;;
        *) echo "not a pure-Python wheel: $w" >&2; exit 1 ;;
    esac
done
