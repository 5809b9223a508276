#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script to run on your CUDA machine: the CUDA-only
# tests, the GPU versions of the speed benchmarks, and the whole test suite with CUDA visible.
#
# It needs, on that machine, a CUDA build of torch, pytest, pytest-xdist (for the suite step)
# and the packages in WHEELS below: `pip install -e ".[test]" pytest-xdist` installs them
# where pip can download. For a machine without network access, `fetch` gets their wheels
# on one with it, and `run` installs them from .whl/.
#
#   benchmarks/gpu_check.sh fetch   on a machine where pip can download: the wheels of the
#                                   packages in WHEELS (CPython 3.12, x86-64 Linux; about
#                                   31 MB) into .whl/ (git-ignored); copy the checkout with
#                                   .whl/ to the CUDA machine
#   benchmarks/gpu_check.sh run [STEP ...]
#                                   on the CUDA machine: installs the wheels of .whl/, if there
#                                   are any, into /tmp/site, then runs the steps below
#                                   (default: all), each under its own time limit, each one's
#                                   output in $OUT/<step>.txt (default ./gpu_check_out/), a
#                                   summary on stdout
#
# The steps' limits add up to about 7.5 minutes. To rerun one step, name it, e.g.
# "benchmarks/gpu_check.sh run losses":
#
#   env        the GPU, and the versions of torch, scikit-learn, faiss and pml
#   gpu_tests  pytest -m gpu: the CUDA-only tests (bf16/fp16, compile, placement)    75 s
#   losses     bench_losses.py --device cuda --sizes 4096 (against pml)              90 s
#   fit        bench_fit.py --device cuda at batch 256 and 1024 (against a hand loop) 60 s
#   knn        bench_knn.py --device cuda, 100k and 1M references (GPU brute force)   80 s
#   suite      the whole test suite with CUDA visible (device="auto" picks it), -n 8 120 s
#
# Rehearsal on a CPU, with the same steps at smoke sizes and no wheels to install:
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 GPU_CHECK_NO_WHEELS=1 benchmarks/gpu_check.sh run
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
WHEELS=(
    "faiss-cpu==1.15.1"
    "pytorch-metric-learning==2.9.0"
    "scikit-learn==1.9.1"  # an installed one may predate 1.6, which sk_deepmetric needs
    "dask==2026.8.0" "distributed==2026.8.0" partd locket tblib zict tornado
)

fetch() {
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
    du -sh .whl && ls .whl
}

versions() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"
    echo "cores: $(nproc)"
    "$PY" - <<'PYTHON'
import sys

import faiss
import pytorch_metric_learning
import sklearn
import torch

cuda = torch.cuda.is_available()
print("python", sys.version.split()[0])
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", cuda,
      torch.cuda.get_device_name() if cuda else "")
print("scikit-learn", sklearn.__version__, "faiss", faiss.__version__,
      "pytorch-metric-learning", pytorch_metric_learning.__version__)
PYTHON
}

step() {  # step NAME LIMIT_SECONDS COMMAND...: run it, keep its output, report rc and time
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --signal=INT --kill-after=15 "$limit" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    local note=""
    [ "$rc" -eq 124 ] && note=" (stopped at its limit)"
    printf '== %s: rc=%s in %ss%s\n' "$name" "$rc" "$((SECONDS - start))" "$note"
    tail -n "${GPU_CHECK_TAIL:-30}" "$out/$name.txt"
    echo
}

run() {
    out=${OUT:-gpu_check_out}
    mkdir -p "$out"
    export PYTHONUNBUFFERED=1
    if [ -d .whl ] && [ -z "${GPU_CHECK_NO_WHEELS:-}" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's sk_deepmetric
    local device=${GPU_CHECK_DEVICE:-cuda} threads
    threads=$(nproc)
    local quick=()
    [ -n "${GPU_CHECK_QUICK:-}" ] && quick=(--quick)

    local steps=("$@")
    [ ${#steps[@]} -eq 0 ] && steps=(env gpu_tests losses fit knn suite)
    for name in "${steps[@]}"; do
        case "$name" in
            env)
                versions > "$out/env.txt" 2>&1
                echo "== env" && cat "$out/env.txt" && echo
                ;;
            gpu_tests) step gpu_tests 75 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests ;;
            losses)
                local sizes=(--sizes 4096)
                [ -n "${GPU_CHECK_QUICK:-}" ] && sizes=(--sizes 256)
                step losses 90 "$PY" benchmarks/bench_losses.py --device "$device" \
                    "${sizes[@]}" --repeats 10 --budget 3
                ;;
            fit)
                step fit 60 bash -c "$PY benchmarks/bench_fit.py --device $device --no-skorch \
${quick[*]} && $PY benchmarks/bench_fit.py --device $device --no-skorch --batch-size 1024 \
${quick[*]}"
                ;;
            knn)
                local sizes_knn=(--n-reference 100000 1000000)
                [ -n "${GPU_CHECK_QUICK:-}" ] && sizes_knn=()
                step knn 80 "$PY" benchmarks/bench_knn.py --device "$device" \
                    --threads "$threads" "${sizes_knn[@]}" "${quick[@]}"
                ;;
            suite)
                local suite=(-n 8)
                [ -n "${GPU_CHECK_QUICK:-}" ] && suite=(tests/test_main.py tests/test_gpu.py)
                step suite 120 "$PY" -m pytest -q -p no:cacheprovider "${suite[@]}"
                ;;
            *)
                echo "unknown step $name: env gpu_tests losses fit knn suite" >&2
                return 2
                ;;
        esac
    done
}

case "${1:-}" in
    fetch) fetch ;;
    run)
        shift
        run "$@"
        ;;
    *)
        echo "usage: $0 fetch | run [STEP ...] (see the comments at the top)" >&2
        exit 2
        ;;
esac
