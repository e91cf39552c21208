#!/usr/bin/env bash
# Issue 14's "behaviour does not change" on a GPU (one call of the `device` tool, under 10 minutes):
# the same short stage-1 and stage-2 runs of the bundled teacher, ARWKV-7 and QRWKV6 students, with
# arwkv-distill --gpu built from this tree and from the revisions named in REVS, whose sources
# (arwkv.h, arwkv_hip.h, Makefile, examples/distill.c) a caller unpacks under bench/grev-<rev>/ first:
#   for r in REV...; do mkdir -p bench/grev-$r/examples; for f in arwkv.h arwkv_hip.h Makefile \
#     examples/distill.c; do git show $r:$f > bench/grev-$r/$f; done; done
# Then test_gpu of this tree. Prints each run's loss column and whether it is the same to the bit.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/same-losses-device.log") 2>&1
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s]"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
REVS=$(ls -d bench/grev-* 2>/dev/null | sed 's|bench/grev-||')
echo "== build: this tree and ${REVS:-no other revision} $(el)"
# (every wait names its processes: a bare wait would also wait for the tee above, which never ends)
pids=""
test_target=build/gpu/test_gpu
[ -n "${SKIP_TEST_GPU:-}" ] && test_target=
${CORES:+taskset -c $CORES} make -j16 build/gpu/arwkv-distill $test_target > "$OUT/build.log" 2>&1 & pids="$pids $!"
for r in $REVS; do ${CORES:+taskset -c $CORES} make -C bench/grev-$r -j4 build/gpu/arwkv-distill > "$OUT/build-$r.log" 2>&1 & pids="$pids $!"; done
wait $pids
ls -la build/gpu/arwkv-distill build/gpu/test_gpu bench/grev-*/build/gpu/arwkv-distill 2>&1 | awk '{print $5, $NF}'
DATA=$(ls tools/*.py tools/*.c | head -12)
run() { # $1 binary, $2 tag
    local g=$1 tag=$2 d=/tmp/runs/$2
    rm -rf $d; mkdir -p $d
    for arch in arwkv7 qrwkv6; do
        ${CORES:+taskset -c $CORES} timeout 120 $g --gpu --teacher models/qwen2-code-tiny --out $d/$arch-s1 --stage 1 --arch $arch --data $DATA --seq-len 256 --batch 4 \
           --steps 12 --log-every 100 --seed 3 > $d/$arch-s1.txt 2>&1 || { echo "$tag $arch stage 1 failed"; tail -3 $d/$arch-s1.txt; }
        ${CORES:+taskset -c $CORES} timeout 120 $g --gpu --teacher models/qwen2-code-tiny --student $d/$arch-s1 --out $d/$arch-s2 --stage 2 --data $DATA --seq-len 256 \
           --batch 2 --steps 8 --log-every 100 --seed 3 > $d/$arch-s2.txt 2>&1 || { echo "$tag $arch stage 2 failed"; tail -3 $d/$arch-s2.txt; }
    done
}
echo "== runs $(el)"
run build/gpu/arwkv-distill main
for r in $REVS; do run bench/grev-$r/build/gpu/arwkv-distill $r; done
for arch in arwkv7 qrwkv6; do for s in s1 s2; do
    f=/tmp/runs/main/$arch-$s/log.csv
    echo "-- $arch $s: main's losses (log.csv):"; cut -d, -f1-4 $f | head -20
    for r in $REVS; do
        g=/tmp/runs/$r/$arch-$s/log.csv
        m1=$(cat /tmp/runs/main/$arch-$s/*.safetensors | md5sum | cut -c1-12); m2=$(cat /tmp/runs/$r/$arch-$s/*.safetensors | md5sum | cut -c1-12)
        echo "   model md5: main $m1, $r $m2"
        if cmp -s <(grep -v ',eval' $f | cut -d, -f1-4) <(grep -v ',eval' $g | cut -d, -f1-4); then echo "   $r: same to the bit"; else echo "   $r: DIFFERENT"; diff <(cut -d, -f1-4 $f) <(cut -d, -f1-4 $g) | head -6; fi
    done
done; done
[ -n "${SKIP_TEST_GPU:-}" ] && { echo "== done, test_gpu skipped $(el)"; exit 0; }
echo "== test_gpu $(el)"
${CORES:+taskset -c $CORES} timeout ${GPU_TEST_TIMEOUT:-240} build/gpu/test_gpu 2>&1 | grep -E "^PASS|^FAIL|^SKIP|passed|failed" | tail -60
echo "== done $(el)"
