#!/usr/bin/env bash
# The README's CPU table on the GPU machine's quiet host CPU, 2 threads pinned to cores 0-1 (one call
# of the `device` tool, beside same-losses-device.sh on the other cores): arwkv-bench matmul, decode,
# train and cpu-ops of this tree's build/cpu (native -march).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/cpu-bench-device.log") 2>&1
lscpu | grep -E "^Model name|^CPU\(s\)|^L2|^L3"
make -j2 B=build/cpu build/cpu/arwkv-bench > /dev/null 2>&1 || echo "build failed"
for b in "matmul 2" "decode 2" "train 2"; do
    echo "== arwkv-bench $b (taskset -c ${CORES:-0,1}) [$(date +%T)]"
    taskset -c ${CORES:-0,1} timeout 300 build/cpu/arwkv-bench $b
done
echo "== done [$(date +%T)]"
