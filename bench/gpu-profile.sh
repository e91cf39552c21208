#!/usr/bin/env bash
# The GPU profile in one go, on a machine with an NVIDIA GPU (a lent device machine: the results go
# to $OUT too). Writes bench/results/gpu-profile-<device>-<date>/:
#   sass.txt        HGMMA / HMMA counts of the matrix-product kernels (cuobjdump, where installed)
#   gpu-ops.txt     arwkv-bench gpu-ops (the default path: wgmma on Hopper)
#   gpu-ops-mma.txt the matrix products on the portable mma.sync kernel (ARWKV_GPU_GEMM=mma)
#   torch.txt       torch.matmul at the same shapes and the ratio arwkv / torch per shape
#   test_gpu.txt    build/gpu/test_gpu (every kernel against the CPU backend)
#   gpu-train.txt   arwkv-bench gpu-train (tokens/s, peak memory, time per op kind)
# Binaries: build/gpu/ (make gpu), or BIN=dir of prebuilt ones. TRAIN=0.5b|1.5b|7b|all, STEPS=n;
# TORCH=0 skips torch.matmul, MMA=0 the mma.sync comparison (shorter runs).
# If the wgmma kernel fails its test, the later runs use ARWKV_GPU_GEMM=mma and say so.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/gpu}
[ -x "$BIN/arwkv-bench" ] || make -j8 gpu >/dev/null || exit 1
device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
slug=$(printf '%s' "${device:-unknown-gpu}" | tr -cs 'A-Za-z0-9' '-' | sed 's/^-//; s/-$//')
R=${OUT:-bench/results/gpu-profile-$slug-$(date -u +%Y-%m-%d)}
mkdir -p "$R"
log() { echo "== $* ($(date -u +%T))"; }

log "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
if command -v cuobjdump >/dev/null 2>&1; then
    cuobjdump --dump-sass "$BIN/arwkv-bench" > /tmp/sass.txt 2>&1
    { echo "HGMMA instructions: $(grep -c HGMMA /tmp/sass.txt)"; echo "HMMA instructions: $(grep -c HMMA /tmp/sass.txt)";
      echo "UTMALDG (tensor copies): $(grep -c UTMALDG /tmp/sass.txt)"; } | tee "$R/sass.txt"
fi

log "gpu-ops matmul (default path)"
timeout 90 "$BIN/arwkv-bench" gpu-ops matmul > "$R/gpu-ops.txt" 2>&1; st=$?
cat "$R/gpu-ops.txt"
gemm_env=""
[ $st -eq 0 ] || { echo "gpu-ops matmul failed or timed out (status $st): the rest runs with ARWKV_GPU_GEMM=mma"; gemm_env=mma; }

log "test_gpu"
ARWKV_GPU_GEMM=$gemm_env ARWKV_TEST_VERBOSE=1 ARWKV_TEST_NO_TIMINGS=1 timeout 240 "$BIN/test_gpu" > "$R/test_gpu.txt" 2>&1
echo "test_gpu status $?"
grep -E "^(PASS|FAIL|SKIP|gpu:|device)" "$R/test_gpu.txt"
grep -q "^FAIL gemm_wgmma" "$R/test_gpu.txt" && gemm_env=mma && echo "wgmma failed its test: the rest runs with ARWKV_GPU_GEMM=mma"
grep -A3 "FAIL" "$R/test_gpu.txt" | head -20

if [ "${TORCH:-1}" != 0 ]; then
    log "torch.matmul"
    timeout 150 python3 bench/gpu-torch-matmul.py --arwkv "$R/gpu-ops.txt" > "$R/torch.txt" 2>&1
    sed -n '/against torch/,$p' "$R/torch.txt"
fi

log "gpu-ops attention, wkv; matmul on mma.sync"
ARWKV_GPU_GEMM=$gemm_env timeout 60 "$BIN/arwkv-bench" gpu-ops attention >> "$R/gpu-ops.txt" 2>&1
ARWKV_GPU_GEMM=$gemm_env timeout 60 "$BIN/arwkv-bench" gpu-ops wkv >> "$R/gpu-ops.txt" 2>&1
[ "${MMA:-1}" != 0 ] && ARWKV_GPU_GEMM=mma timeout 90 "$BIN/arwkv-bench" gpu-ops matmul > "$R/gpu-ops-mma.txt" 2>&1
grep -A40 "teacher attention" "$R/gpu-ops.txt"

log "gpu-train ${TRAIN:-all}"
ARWKV_GPU_GEMM=$gemm_env timeout ${TRAIN_TIMEOUT:-240} "$BIN/arwkv-bench" gpu-train "${TRAIN:-all}" "${STEPS:-2}" > "$R/gpu-train.txt" 2>&1
echo "gpu-train status $?"
cat "$R/gpu-train.txt"
log "done"
