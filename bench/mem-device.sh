#!/usr/bin/env bash
# The memory goals on a GPU machine (one call of the `device` tool, ~4 minutes): arwkv-distill --gpu
# prints its memory plan at the start and the allocator's measured peak at the end, with tokens/s.
#   1. the bundled teacher: stage 1 (and at the end stage 2, with and without --offload-optimizer):
#      plan against peak;
#   2. a random Qwen2.5-7B-shaped teacher (arwkv-random-teacher), B 1, T 2048, no gate:
#      stage 1 --offload-optimizer, stage 2 --freeze-mlp, stage 2 --offload-optimizer, and stage 2
#      with --recompute (with --freeze-mlp, with --offload-optimizer).
# Everything goes to $OUT/mem-device.log; each run has its own time limit so one slow run leaves the
# others their turn. ONLY7B=1: part 2 alone. STAGE2=1: part 2 with the stage-2 runs of --recompute
# (the 7B teacher is made if /tmp/t7 does not hold it yet).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG="$OUT/mem-device.log"
exec > >(tee "$LOG") 2>&1
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s]"; }
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
nproc; free -g | head -2
echo "== build $(el)"
make -j${JOBS:-4} build/gpu/arwkv-distill build/arwkv-random-teacher > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
G=build/gpu/arwkv-distill
DATA="arwkv.h tests/test_cli.c tests/test_train.c"
summary() { grep -E "^memory plan|^  |^step|tokens/s|^memory:|arwkv-distill:" ; }
if [ "${ONLY7B:-0}" != 1 ]; then
echo "== 1. bundled teacher $(el)"
timeout 30 $G --gpu --teacher models/qwen2-code-tiny --out /tmp/m1 --stage 1 --data $DATA --seq-len 256 --batch 4 --steps 6 --lr 2e-3 --log-every 3 | summary
fi
echo "== 2. random 7B-shaped teacher $(el)"
[ -f /tmp/t7/config.json ] || timeout 90 build/arwkv-random-teacher --out /tmp/t7 --shape 7b
if [ "${STAGE2:-0}" = 1 ]; then
    s2() { echo "-- stage 2 $2 $(el)"; timeout "$1" $G --gpu --teacher /tmp/t7 --out /tmp/s7r --stage 2 --no-gate --data $DATA --seq-len 2048 --batch 1 --steps 2 --log-every 1 $2 --no-save | summary; }
    s2 110 "--recompute --offload-optimizer"
    s2 60 "--freeze-mlp"
    echo "-- stage 1 --offload-optimizer $(el)"
    timeout 50 $G --gpu --teacher /tmp/t7 --out /tmp/s7a --stage 1 --no-gate --data $DATA --seq-len 2048 --batch 1 --steps 3 --log-every 1 --offload-optimizer --no-save | summary
    s2 60 "--recompute --freeze-mlp"
    echo "== done $(el)"
    exit 0
fi
echo "-- stage 1 --offload-optimizer $(el)"
timeout 60 $G --gpu --teacher /tmp/t7 --out /tmp/s7a --stage 1 --no-gate --data $DATA --seq-len 2048 --batch 1 --steps 3 --log-every 1 --offload-optimizer --no-save | summary
echo "-- stage 2 --offload-optimizer $(el)"
timeout 70 $G --gpu --teacher /tmp/t7 --out /tmp/s7c --stage 2 --no-gate --data $DATA --seq-len 2048 --batch 1 --steps 2 --log-every 1 --offload-optimizer --no-save | summary
echo "-- stage 2 --freeze-mlp $(el)"
timeout 50 $G --gpu --teacher /tmp/t7 --out /tmp/s7b --stage 2 --no-gate --data $DATA --seq-len 2048 --batch 1 --steps 2 --log-every 1 --freeze-mlp --no-save | summary
[ "${ONLY7B:-0}" = 1 ] && { echo "== done $(el)"; exit 0; }
echo "== 3. bundled teacher, stage 2 $(el)"
timeout 20 $G --gpu --teacher models/qwen2-code-tiny --student /tmp/m1 --out /tmp/m2 --stage 2 --data $DATA --seq-len 256 --batch 2 --steps 3 --log-every 1 --no-save | summary
timeout 20 $G --gpu --teacher models/qwen2-code-tiny --student /tmp/m1 --out /tmp/m3 --stage 2 --data $DATA --seq-len 256 --batch 2 --steps 3 --log-every 1 --offload-optimizer --no-save | summary
echo "== done $(el)"
