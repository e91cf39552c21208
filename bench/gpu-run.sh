#!/usr/bin/env bash
# On a machine with a GPU: build the GPU test binary and programs, run the tests against the CPU
# backend, the timings and arwkv-gpu-info, and keep everything in one result file named after the
# device and the date: bench/results/gpu-test-<device>-<date>.txt (also copied to $OUT when that is
# set, as on the lent device machines). Commit that file: CI has no GPU.
#   bash bench/gpu-run.sh            NVIDIA, nvcc (GPU_ARCH=sm_90 by default)
#   GPU=hip bash bench/gpu-run.sh    AMD, hipcc (HIP_ARCH=gfx942 by default)
set -uo pipefail
cd "$(dirname "$0")/.."
kind=${GPU:-cuda}
if [ "$kind" = hip ]; then target=gpu-hip; dir=build/hip; else target=gpu; dir=build/gpu; fi
if command -v nvidia-smi >/dev/null 2>&1 && [ "$kind" != hip ]; then
    device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
elif command -v rocm-smi >/dev/null 2>&1; then
    device=$(rocm-smi --showproductname 2>/dev/null | grep -m1 -i 'card series' | sed 's/.*: *//')
fi
device=${device:-unknown-gpu}
slug=$(printf '%s' "$device" | tr -cs 'A-Za-z0-9' '-' | sed 's/^-//; s/-$//')
out=bench/results/gpu-test-$slug-$(date -u +%Y-%m-%d).txt
mkdir -p bench/results
{
    echo "# arwkv GPU test: $device, $(date -u '+%Y-%m-%d %H:%M UTC'), commit ${ARWKV_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -1
    echo "## make $target"
    if ! make -j${JOBS:-4} "$target" 2>&1 | tail -4; then echo "BUILD FAILED"; fi
    echo "## $dir/test_gpu"
    ARWKV_TEST_VERBOSE=1 timeout ${GPU_TEST_TIMEOUT:-900} "$dir/test_gpu"
    echo "test_gpu exit status $?"
    echo "## $dir/arwkv-gpu-info"
    "$dir/arwkv-gpu-info"
    ARWKV_GPU_GEMM=fp32 "$dir/arwkv-gpu-info" | tail -2
} 2>&1 | tee "$out"
[ -n "${OUT:-}" ] && cp "$out" "$OUT/"
grep -q '^gpu: [0-9]* passed, 0 failed' "$out"
