#!/bin/sh
# Same budget, different students: ARWKV-7 from upstream's init, ARWKV-7 inheriting the teacher's
# attention weights, and QRWKV6. Each runs stage 1 then stage 2 on the demo's data (CPython stdlib,
# every tenth file held out) and reports held-out perplexity and KL to the teacher after each stage.
#
#   sh tools/compare.sh [OUT_DIR]        (about 25 minutes on 2 cores; knobs: CMP_STEPS1, CMP_STEPS2)
set -e
B=${B:-build}
OUT=${1:-$B/compare}
S1=${CMP_STEPS1:-150}
S2=${CMP_STEPS2:-60}
TEACHER=models/qwen2-code-tiny
STDLIB=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -n 1)
mkdir -p "$OUT"
ls "$STDLIB"/*.py | sort > "$OUT/all.txt"
awk 'NR % 10 == 0' "$OUT/all.txt" > "$OUT/heldout.txt"
awk 'NR % 10 != 0' "$OUT/all.txt" > "$OUT/train.txt"
COMMON="--teacher $TEACHER --eval-data $(tr '\n' ' ' < "$OUT/heldout.txt") --eval-windows 16 --seq-len 256 --data $(tr '\n' ' ' < "$OUT/train.txt")"
for v in "arwkv7-upstream:--init upstream" "arwkv7-inherit:--init inherit" "qrwkv6:--arch qrwkv6"; do
    name=${v%%:*}; flags=${v#*:}
    rm -rf "$OUT/$name-1" "$OUT/$name-2"
    "$B/arwkv-distill" $COMMON $flags --stage 1 --out "$OUT/$name-1" --batch 4 --steps "$S1" --lr 2e-3 --lr-final 2e-4 \
        --summary-json "$OUT/$name-1.json" > "$OUT/$name-1.log" 2>&1
    "$B/arwkv-distill" $COMMON --stage 2 --student "$OUT/$name-1" --out "$OUT/$name-2" --batch 2 --steps "$S2" --lr 5e-4 --lr-final 5e-5 \
        --summary-json "$OUT/$name-2.json" > "$OUT/$name-2.log" 2>&1
done
get() { sed -n "s/.*\"$2\": {\"student_ppl\": \([0-9.]*\), \"teacher_ppl\": \([0-9.]*\), \"kl\": \([0-9.]*\).*/\\$3/p" "$1"; }
printf "%-18s %12s %12s %12s %10s %10s %10s\n" student "ppl init" "ppl stage1" "ppl stage2" "KL init" "KL st.1" "KL st.2"
for name in arwkv7-upstream arwkv7-inherit qrwkv6; do
    printf "%-18s %12.2f %12.2f %12.2f %10.4f %10.4f %10.4f\n" "$name" \
        "$(get "$OUT/$name-1.json" eval_before 1)" "$(get "$OUT/$name-1.json" eval_after 1)" "$(get "$OUT/$name-2.json" eval_after 1)" \
        "$(get "$OUT/$name-1.json" eval_before 3)" "$(get "$OUT/$name-1.json" eval_after 3)" "$(get "$OUT/$name-2.json" eval_after 3)"
done
printf "teacher ppl %.2f; stage 1: %s steps of 4 x 256 tokens, stage 2: %s steps of 2 x 256 tokens\n" "$(get "$OUT/qrwkv6-1.json" eval_before 2)" "$S1" "$S2"
for name in arwkv7-upstream arwkv7-inherit qrwkv6; do
    printf "%-18s stage-1 loss %s -> %s\n" "$name" "$(sed -n 's/.*"first_loss": \([0-9.]*\).*/\1/p' "$OUT/$name-1.json")" \
        "$(sed -n 's/.*"last_loss": \([0-9.]*\).*/\1/p' "$OUT/$name-1.json")"
done
