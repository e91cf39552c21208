#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool), everything that needs a GPU or transformers:
#   1. bench/gpu-run.sh: build with nvcc, test every kernel against the CPU backend, time it;
#   2. transformers' float32 references: tests/data/teacher_ref.safetensors (tools/ref_teacher.py)
#      and the nll of held-out files (tools/ref_eval.py) to compare with arwkv-eval;
#   3. the GPU build end to end: stages 1 and 2 with arwkv-distill --gpu, generation and eval.
# Held-out texts come in .carry/texts (CPython stdlib files from the development machine).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T=.carry/texts
echo "== 1. GPU tests"
GPU_TEST_TIMEOUT=240 bash bench/gpu-run.sh > "$OUT/gpu-run.log" 2>&1; echo "gpu-run status $?"
grep -E "^(PASS|FAIL|gpu:)|GFLOP|TFLOP|GB/s|ms|tok" "$OUT/gpu-run.log" | tail -40
if [ "${REFS:-0}" = 1 ]; then # the fixtures are committed; REFS=1 makes them again
    echo "== 2. transformers references"
    texts=(); for f in $T/*.py; do texts+=(--text "$f"); done
    timeout 200 python3 tools/ref_teacher.py models/qwen2-code-tiny "${texts[@]}" --out "$OUT/teacher_ref.safetensors" --device cuda 2>&1 | tail -3
    timeout 100 python3 tools/ref_eval.py models/qwen2-code-tiny $T/*.py 2>&1 | tee "$OUT/ref_eval.txt"
fi
echo "== 3. the GPU build end to end"
G=build/gpu
for f in $T/*.py; do $G/arwkv-eval --gpu --model models/qwen2-code-tiny --text "$f" 2>/dev/null | sed "s|^|$f (gpu) |"; done | tee "$OUT/gpu_eval.txt"
P=$'def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) +'
echo "-- teacher greedy, GPU:"; $G/arwkv-chat --gpu --model models/qwen2-code-tiny --raw --prompt "$P" -n 48 --temperature 0 | od -c | head -3
timeout 150 $G/arwkv-distill --gpu --teacher models/qwen2-code-tiny --out /tmp/g1 --stage 1 --data $T/*.py --seq-len 256 --batch 8 \
    --steps 60 --lr 2e-3 --log-every 10 2>&1 | tail -5
timeout 150 $G/arwkv-distill --gpu --teacher models/qwen2-code-tiny --student /tmp/g1 --out /tmp/g2 --stage 2 --data $T/*.py \
    --seq-len 256 --batch 4 --steps 20 --lr 5e-4 --log-every 5 2>&1 | tail -5
echo "-- QRWKV6 student, stages 1 and 2 on the GPU:"
timeout 120 $G/arwkv-distill --gpu --arch qrwkv6 --teacher models/qwen2-code-tiny --out /tmp/q1 --stage 1 --data $T/*.py \
    --seq-len 256 --batch 8 --steps 40 --lr 2e-3 --log-every 10 2>&1 | tail -3
timeout 120 $G/arwkv-distill --gpu --teacher models/qwen2-code-tiny --student /tmp/q1 --out /tmp/q2 --stage 2 --data $T/*.py \
    --seq-len 256 --batch 4 --steps 20 --lr 5e-4 --log-every 5 2>&1 | tail -3
echo "-- QRWKV6 student decode, GPU:"; $G/arwkv-chat --gpu --model /tmp/q2 --raw --prompt "$P" -n 200 --temperature 0 > /dev/null
echo "-- student decode, GPU:"; $G/arwkv-chat --gpu --model /tmp/g2 --raw --prompt "$P" -n 200 --temperature 0 > /dev/null
echo "-- teacher decode, GPU:"; $G/arwkv-chat --gpu --model models/qwen2-code-tiny --raw --prompt "import os" -n 200 --temperature 0.8 --seed 2 > /dev/null
