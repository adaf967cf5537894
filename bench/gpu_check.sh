#!/usr/bin/env bash
# The project's one GPU script. On a GPU machine with nothing but this repository (no network):
#
#   bash bench/gpu_check.sh [all|tests|bench|attention|networks|build] [extra arguments for bench.run / bench.attention]
#
# all (default): environment report, SpikingJelly from .whl/ (when present), the whole test suite on CUDA,
# then the benchmarks (bench.run: the neurons; bench.attention: TCJA, T-XA, DTA; verification first, then
# timing) and their plots, in about 9 minutes (GPU_CHECK_SECONDS,
# default 530): the tests get at most TEST_SECONDS (default 240), the benchmark the rest, with a budget
# that starts no new case late and saves its results after every case. BUILD_NATIVE=1 first builds the
# native extension in place (nvcc; minutes, so better as its own call: `bash bench/gpu_check.sh build`).
#
# GPU_CHECK_DRY_RUN=1 checks the script's plumbing on a machine without a GPU (the test suite does): the
# environment check does not require CUDA, the test phase runs one small test file, and the benchmarks run
# eager only, on the CPU, at their quick sizes, writing to $OUT (or a temporary folder), never bench/results.
#
# Device tool: carry `.whl` (bench/fetch_peers.sh fills it; git ignores it) so the SpikingJelly rows run.
# Everything is logged to $OUT/gpu_check.log and the results (CSV, JSON, PNGs) are copied to $OUT when it is
# set; they are also written to bench/results/. Fails loudly: any failed phase makes the exit status
# non-zero and is named at the end, but a failed test phase does not stop the benchmark (a GPU session is
# too scarce to waste; the benchmark verifies every provider itself before timing it).
set -uo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-all}
shift || true
PY=${PYTHON:-python3}
RESULTS=bench/results
DRY=${GPU_CHECK_DRY_RUN:-0}
if [ "$DRY" = 1 ]; then RESULTS=${OUT:-$(mktemp -d)}/dry-run-results; fi
TOTAL=${GPU_CHECK_SECONDS:-530}
TEST_SECONDS=${TEST_SECONDS:-240}
mkdir -p "$RESULTS"
LOG=${OUT:-/tmp}/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET SNNKERNELS_BACKEND
FAILED=()

say() { echo; echo "== [$(date -u +%H:%M:%S), ${SECONDS}s] $*"; }

say "environment"
if [ "$DRY" = 1 ]; then echo "dry run: no GPU required"; else nvidia-smi || FAILED+=("nvidia-smi"); fi
git log -1 --format='commit %H (%s)' 2>/dev/null || true
git status --short 2>/dev/null | head -20 || true
DRY=$DRY $PY - <<'PY' || FAILED+=("environment")
import os, platform, sys
import torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda)
if not torch.cuda.is_available():
    if os.environ.get("DRY") != "1":
        sys.exit("torch sees no CUDA device")
else:
    print("device", torch.cuda.get_device_name(), "| capability", torch.cuda.get_device_capability())
for name in ("triton", "cupy", "numpy", "pytest", "pytest_benchmark", "matplotlib", "tqdm", "ninja"):
    try:
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"{name}: not importable ({type(exc).__name__}: {exc})")
PY
if [ ${#FAILED[@]} -gt 0 ]; then echo "FAILED: ${FAILED[*]} (no usable GPU)"; exit 2; fi

# SpikingJelly 2.0 (pure Python) and loguru, which its neuron code imports, travel as wheels in .whl/
if ls .whl/spikingjelly-*.whl >/dev/null 2>&1; then
    say "SpikingJelly from .whl/"
    mkdir -p /tmp/site
    if ! $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; then
        echo "pip could not install the wheels; unpacking them (pure-Python wheels are zip files)"
        for w in .whl/*.whl; do $PY -m zipfile -e "$w" /tmp/site || FAILED+=("unpack $w"); done
    fi
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
    $PY -c "import spikingjelly.activation_based.neuron, importlib.metadata as m; print('spikingjelly', m.version('spikingjelly'))" \
        || FAILED+=("spikingjelly import")
else
    echo "no .whl/spikingjelly-*.whl: the SpikingJelly rows and parity tests will be skipped (bench/fetch_peers.sh, carry .whl)"
fi

build() {
    say "build: native extension in place (CPU + CUDA kernels)"
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-"8.0;9.0"} MAX_JOBS=${MAX_JOBS:-16}
    SNNKERNELS_BUILD_NATIVE=1 $PY setup.py build_ext --inplace 2>&1 | tail -30
    [ "${PIPESTATUS[0]}" -eq 0 ] || FAILED+=("build")
}

# the files that hold what only a GPU can show first (native CUDA and CuPy, the kernels whose block barriers or
# thread layouts the interpreter cannot exercise), so that a time limit cuts the CPU-proven rest
GPU_FIRST="ops/test_leaky.py ops/test_staa_loop.py ops/test_dta_leaky.py ops/test_gated_leaky.py
    ops/test_ma_snn_fused.py ops/test_global_context.py ops/test_pooled_attention.py ops/test_bn_lif.py
    ops/test_spiking_attention.py ops/test_spike_pack.py nn/test_spikingjelly_parity.py"

# files whose subject the CPU CI proves in full (compilers, the JIT build, docs, this script): skipped here, so
# that device time goes to what needs the device
GPU_SKIP="build/test_native_build.py kernels/test_triton_compile.py kernels/test_static_report.py
    build/test_docs_build.py bench/test_gpu_script.py"

tests() {
    say "tests: python_tests on CUDA (at most ${TEST_SECONDS}s)"
    local which=() f first skip
    first=" $(echo $GPU_FIRST) "  # one line, single spaces
    skip=" $(echo $GPU_SKIP) "
    for f in $GPU_FIRST; do which+=("python_tests/$f"); done
    for f in $(find python_tests -name 'test_*.py' | sort); do
        case "$first$skip" in *" ${f#python_tests/} "*) ;; *) which+=("$f") ;; esac
    done
    say "tests: ${#which[@]} files in this order: ${which[*]#python_tests/}; skipped (CPU-proven): $GPU_SKIP"
    [ "$DRY" = 1 ] && which=(python_tests/test_surrogate.py)
    timeout --signal=INT --kill-after=20 "$TEST_SECONDS" $PY -m pytest "${which[@]}" -q -p no:cacheprovider -rfEs \
        --durations=15
    local rc=$?
    case $rc in
        0) ;;
        124|137) FAILED+=("tests (time limit ${TEST_SECONDS}s)") ;;
        *) FAILED+=("tests (exit $rc)") ;;
    esac
}

# run_bench NAME MODULE SECONDS [args]: one benchmark module under a hard time limit, with a budget that
# starts no new case in its last 90 s (a torch.compile case may take that long)
run_bench() {
    local name=$1 module=$2 limit=$3
    shift 3
    [ "$limit" -gt 60 ] || limit=60
    local minutes
    minutes=$($PY -c "print(max(0.5, ($limit - 90) / 60))")
    say "$name on CUDA (hard limit ${limit}s, no new case after ${minutes} min)"
    local device=(--device cuda)
    [ "$DRY" = 1 ] && device=(--device cpu --quick --providers torch-eager)
    timeout --signal=TERM --kill-after=15 "$limit" $PY -m "$module" "${device[@]}" --out "$RESULTS" --no-plot \
        --max-minutes "$minutes" "$@"
    local rc=$?
    case $rc in
        0) ;;
        124|137) FAILED+=("$name (killed at its time limit; results saved up to the last finished case)") ;;
        1) FAILED+=("$name (a provider FAILED verification or a case; see the FAILED lines and the CSV)") ;;
        *) FAILED+=("$name (exit $rc)") ;;
    esac
}

# plots of every results file written since the marker, and the copies to $OUT
collect() {
    say "plots"
    local produced
    produced=$(find "$RESULTS" -maxdepth 1 -newer /tmp/gpu_check.marker \( -name '*.json' -o -name '*.csv' \) | sort)
    for f in $produced; do
        case $f in *.json) $PY -m bench.plot "$f" || FAILED+=("plot $f") ;; esac
    done
    if [ -n "${OUT:-}" ]; then
        find "$RESULTS" -maxdepth 1 -newer /tmp/gpu_check.marker -type f \
            \( -name '*.json' -o -name '*.csv' -o -name '*.png' \) -exec cp {} "$OUT"/ \;
        ls -la "$OUT"
    fi
}

# the neuron benchmark gets 60 % of what is left, the attention benchmark (TCJA, T-XA, DTA) the rest
bench() {
    local left=$((TOTAL - SECONDS - 40))
    touch /tmp/gpu_check.marker
    run_bench "bench (neurons)" bench.run $((left * 6 / 10)) "$@"
    run_bench "bench (attention)" bench.attention $((TOTAL - SECONDS - 40))
    collect
}

networks() {
    touch /tmp/gpu_check.marker
    run_bench "bench (networks)" bench.networks $((TOTAL - SECONDS - 40)) "$@"
    collect
}

attention() {
    touch /tmp/gpu_check.marker
    run_bench "bench (attention)" bench.attention $((TOTAL - SECONDS - 40)) "$@"
    collect
}

case "$PHASE" in
    build) build ;;
    tests) tests ;;
    bench) bench "$@" ;;
    attention) attention "$@" ;;
    networks) networks "$@" ;;
    all)
        if [ "${BUILD_NATIVE:-0}" = 1 ]; then build; fi
        tests
        bench "$@"
        ;;
    *) echo "usage: bash bench/gpu_check.sh [all|tests|bench|attention|networks|build] [benchmark arguments]" >&2; exit 2 ;;
esac

# the static model's prediction next to each timing just written (in the dry run: predictions only, no GPU)
if [ "$PHASE" != build ] && [ "$PHASE" != tests ] && [ -f /tmp/gpu_check.marker ]; then
    say "predicted (bench/results/*_static-sm90.json) vs measured"
    MEASURED=$(find "$RESULTS" -maxdepth 1 -newer /tmp/gpu_check.marker -name '*.json' | sort)
    if [ -n "$MEASURED" ]; then
        # shellcheck disable=SC2086  # one argument per file (the names have no spaces)
        $PY -m bench.predicted_vs_measured $MEASURED || FAILED+=("predicted vs measured")
        [ -z "${OUT:-}" ] || find "$RESULTS" -maxdepth 1 -name '*_predicted-vs-measured.md' -newer /tmp/gpu_check.marker -exec cp {} "$OUT"/ \;
    else
        echo "no results JSON written by this run: nothing to compare"
    fi
fi

say "done"
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "all phases passed"
