#!/usr/bin/env bash
# --stream-teacher on a GPU machine (one call of the `device` tool, under 10 minutes):
#   1. build, then test_gpu (its streamed_teacher_matches_resident compares a streamed stage 1
#      with the resident one to the bit);
#   2. a random Qwen2.5-7B-shaped teacher, B 1, T 2048, no gate: stage 1 --offload-optimizer with
#      the teacher resident, then streamed (peak device memory and tokens/s side by side);
#   3. a Qwen2.5-32B-shaped teacher (hidden 5120, 40/8 heads, MLP 27648, vocab 152064, untied) cut
#      to LAYERS32 layers (default 16: the 64-layer teacher is 65 GB and the machine's disk 64 GiB):
#      stage 1 --stream-teacher --offload-optimizer.
# Everything goes to $OUT/stream-device.log.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/stream-device.log") 2>&1
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s]"; }
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
nproc; free -g | head -2; df -h /tmp | tail -1
echo "== build $(el)"
make -j${JOBS:-16} build/gpu/test_gpu build/gpu/arwkv-distill build/arwkv-random-teacher > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
echo "== 1. test_gpu $(el)"
timeout ${GPU_TEST_TIMEOUT:-200} build/gpu/test_gpu 2>&1 | grep -E "^PASS|^FAIL|^SKIP|FAILED|streamed|passed"
G=build/gpu/arwkv-distill
DATA="arwkv.h tests/test_cli.c tests/test_train.c"
summary() { grep -E "^memory plan|^  |^step|tokens/s|^memory:|arwkv-distill:" ; }
echo "== 2. 7B-shaped teacher $(el)"
[ -f /tmp/t7/config.json ] || timeout 90 build/arwkv-random-teacher --out /tmp/t7 --shape 7b
for s in "" "--stream-teacher"; do
    echo "-- stage 1 --offload-optimizer $s $(el)"
    timeout 70 $G --gpu --teacher /tmp/t7 --out /tmp/s7$s --stage 1 --no-gate --data $DATA --seq-len 2048 --batch 1 --steps 4 --log-every 1 --offload-optimizer --no-save $s | summary
done
rm -rf /tmp/t7
L=${LAYERS32:-16}
echo "== 3. 32B-shaped teacher, $L layers $(el)"
timeout 150 build/arwkv-random-teacher --out /tmp/t32 --shape 32b --layers $L
echo "-- stage 1 --stream-teacher --offload-optimizer $(el)"
timeout 150 $G --gpu --teacher /tmp/t32 --out /tmp/s32 --stage 1 --no-gate --data $DATA --seq-len 2048 --batch 1 --steps 3 --log-every 1 --offload-optimizer --stream-teacher --no-save | summary
echo "== done $(el)"
