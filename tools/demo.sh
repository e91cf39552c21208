#!/bin/sh
# make demo: distill the bundled teacher (models/qwen2-code-tiny, a Qwen2 trained on Python code) into
# an ARWKV-7 student on this CPU, in about 4 minutes on 2 cores: stage 1 (each time mix learns its layer's
# attention output), then stage 2 (the student learns the teacher's next-token distribution).
# Data: the CPython standard library found on this machine, split by file into training and
# held-out files (every tenth file is held out; the teacher never saw the standard library).
# Each stage prints teacher and student perplexity on the held-out files before and after.
#
# Knobs (environment): DEMO_STEPS1, DEMO_STEPS2, DEMO_THREADS, DEMO_OUT, DEMO_STDLIB (a directory of .py
# files to use instead of /usr/lib/python3.*).
set -e
B=${B:-build}
OUT=${DEMO_OUT:-$B/demo}
TEACHER=models/qwen2-code-tiny
S1=${DEMO_STEPS1:-250}
S2=${DEMO_STEPS2:-200}
THREADS=${DEMO_THREADS:-0}

STDLIB=${DEMO_STDLIB:-$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$STDLIB" ] || [ ! -f "$STDLIB/os.py" ]; then
    echo "demo: no CPython standard library under /usr/lib/python3.* (install python3, or name one with DEMO_STDLIB)" >&2
    exit 1
fi
mkdir -p "$OUT"
# every tenth .py file (sorted by name) is held out; the rest is training data
ls "$STDLIB"/*.py | sort > "$OUT/all.txt"
awk 'NR % 10 == 0' "$OUT/all.txt" > "$OUT/heldout.txt"
awk 'NR % 10 != 0' "$OUT/all.txt" > "$OUT/train.txt"
echo "demo: teacher $TEACHER; data: $(wc -l < "$OUT/train.txt") training and $(wc -l < "$OUT/heldout.txt") held-out files from $STDLIB"

COMMON="--teacher $TEACHER --eval-data $(tr '\n' ' ' < "$OUT/heldout.txt") --eval-windows 16 --threads $THREADS --seq-len 256"
echo
echo "== stage 1: align each layer's time mix with its attention ($S1 steps)"
rm -rf "$OUT/stage1" "$OUT/stage2"
"$B/arwkv-distill" $COMMON --stage 1 --out "$OUT/stage1" --data $(tr '\n' ' ' < "$OUT/train.txt") \
    --batch 4 --steps "$S1" --lr 2e-3 --lr-final 2e-4 --summary-json "$OUT/stage1.json"
echo
echo "== stage 2: distill the teacher's next-token distribution ($S2 steps)"
"$B/arwkv-distill" $COMMON --stage 2 --student "$OUT/stage1" --out "$OUT/stage2" --data $(tr '\n' ' ' < "$OUT/train.txt") \
    --batch 2 --steps "$S2" --lr 5e-4 --lr-final 5e-5 --summary-json "$OUT/stage2.json"
echo
echo "== held-out perplexity (16 sequences of 256 tokens from files the teacher never saw)"
awk -F'[:,}]' '
    /"teacher_ppl"/ && !t { for (i = 1; i <= NF; i++) if ($i ~ /teacher_ppl/) t = $(i + 1) }
    /"eval_before"/ { for (i = 1; i <= NF; i++) if ($i ~ /student_ppl/) before = $(i + 1) }
    /"eval_after"/ { for (i = 1; i <= NF; i++) if ($i ~ /student_ppl/) after = $(i + 1) }
    END { printf "  teacher %10.2f\n  student before stage 1 %10.2f\n  student after stage 1  %10.2f\n", t, before, after }' "$OUT/stage1.json"
awk -F'[:,}]' '/"eval_after"/ { for (i = 1; i <= NF; i++) if ($i ~ /student_ppl/) after = $(i + 1) }
    END { printf "  student after stage 2  %10.2f\n", after }' "$OUT/stage2.json"
echo "The student is in $OUT/stage2; talk to it with: $B/arwkv-chat --model $OUT/stage2"
