#!/usr/bin/env bash
# The project's one GPU script. On a GPU machine with nothing but this repository (no network):
#   bash bench/gpu_check.sh [all|build|tests|bench] [extra args for bench.run]
# build: the native extension (CPU + CUDA kernels) in place; tests: the whole suite on CUDA;
# bench: bench.run on CUDA (verification first, then timing). Logs and results go to bench/results/ and,
# when $OUT is set (the device tool's folder that comes back), to $OUT too. Each phase fits in the device
# tool's 10-minute limit; "all" runs them in order. Fails loudly: the first failing phase stops the script.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-all}
shift || true
PY=${PYTHON:-python3}
RESULTS=bench/results
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -cs 'A-Za-z0-9' '-' | sed 's/-$//' | tr 'A-Z' 'a-z')
STAMP="$(date -u +%Y-%m-%d)_${GPU}"

copy_out() { if [ -n "${OUT:-}" ]; then cp "$@" "$OUT"/ 2>/dev/null || true; fi; }

echo "== environment"
nvidia-smi
$PY - <<'PY'
import torch, sys
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| device", torch.cuda.get_device_name())
try:
    import triton; print("triton", triton.__version__)
except ImportError as e: print("triton missing:", e)
try:
    import cupy; print("cupy", cupy.__version__)
except ImportError as e: print("cupy missing:", e)
PY

# SpikingJelly travels as a wheel in .whl/ (bench/fetch_peers.sh fetches it; git ignores .whl/)
if ls .whl/spikingjelly-*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --target /tmp/sj-site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/sj-site"
    echo "spikingjelly installed from .whl/"
else
    echo "no .whl/spikingjelly-*.whl: SpikingJelly rows and parity tests will be skipped (run bench/fetch_peers.sh)"
fi

build() {
    echo "== build: native extension (CPU + CUDA, sm_80/sm_90)"
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-"8.0;9.0"} MAX_JOBS=${MAX_JOBS:-16}
    SNNKERNELS_BUILD_NATIVE=1 $PY setup.py build_ext --inplace 2>&1 | tail -20 | tee "$RESULTS/${STAMP}_build.log"
    copy_out "$RESULTS/${STAMP}_build.log"
}

tests() {
    echo "== tests on CUDA"
    set +e
    $PY -m pytest python_tests -q -p no:cacheprovider -rs 2>&1 | tee "$RESULTS/${STAMP}_tests.log"
    local rc=${PIPESTATUS[0]}
    set -e
    copy_out "$RESULTS/${STAMP}_tests.log"
    return "$rc"
}

bench() {
    echo "== benchmark on CUDA"
    $PY -m bench.run --device cuda --out "$RESULTS" --max-minutes "${BENCH_MINUTES:-7}" "$@" 2>&1 \
        | tee "$RESULTS/${STAMP}_bench.log"
    copy_out "$RESULTS/${STAMP}_bench.log" "$RESULTS"/"$(date -u +%Y-%m-%d)"_*.csv "$RESULTS"/"$(date -u +%Y-%m-%d)"_*.json \
        "$RESULTS"/"$(date -u +%Y-%m-%d)"_*.png
}

case "$PHASE" in
    build) build ;;
    tests) tests ;;
    bench) bench "$@" ;;
    all) build; tests; bench "$@" ;;
    *) echo "usage: bash bench/gpu_check.sh [all|build|tests|bench]" >&2; exit 2 ;;
esac
