#!/usr/bin/env bash
# make demo, before and after the AVX-512 kernels, on the GPU machine's host CPU (one call of the
# `device` tool): a quiet machine of the kind issue 19 was measured on (an Intel Xeon with AVX-512
# and AVX512_BF16), where our 2-core development machine is shared. Each demo runs on 2 threads
# pinned to its own 2 cores, both at once: "after" is this tree, "before" the sources a caller
# unpacks under bench/rev-<rev>/ (arwkv.h, Makefile, examples/distill.c; unpacked as same-losses-device.sh says).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/cpu-device.log") 2>&1
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s]"; }
lscpu | grep -E "^Model name|^CPU\(s\)|^Thread|^L2|^L3"
grep -o -w -E "avx512f|avx512_bf16|avx512_fp16|amx_bf16" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
REV=$(ls -d bench/rev-* | head -1)
if ! ls /usr/lib/python3.[0-9]*/os.py > /dev/null 2>&1; then export DEMO_STDLIB=$(python3 -c 'import os; print(os.path.dirname(os.__file__))'); fi
echo "demo data: ${DEMO_STDLIB:-$(ls -d /usr/lib/python3.[0-9]* | sort -V | tail -n 1)}"
echo "== build: this tree (build/cpu) and $REV $(el)"
# (every wait names its processes: a bare wait would also wait for the tee above, which never ends)
make -j4 B=build/cpu build/cpu/arwkv-distill build/cpu/arwkv-bench > "$OUT/cpu-build.log" 2>&1 & b1=$!
make -C $REV -j4 B=build build/arwkv-distill > "$OUT/cpu-build-rev.log" 2>&1 & b2=$!
wait $b1 $b2
echo "== make demo, 2 threads each, both at once $(el)"
TIMEFORMAT='wall %R s, user %U s, sys %S s'
demo() { # $1 after|before, $2 build directory, $3 cores
    { time (DEMO_THREADS=2 DEMO_OUT=/tmp/demo-$1 B=$2 timeout ${DEMO_TIMEOUT:-540} taskset -c $3 sh tools/demo.sh > "$OUT/demo-$1.txt" 2>&1; echo "exit status $?" >> "$OUT/demo-$1.txt"); } 2> "$OUT/demo-$1.time"
}
demo after build/cpu 0,1 & d1=$!
demo before $REV/build 2,3 & d2=$!
wait $d1 $d2
for f in after before; do
    echo "-- $f:"
    grep -E "^step +(250/250|200/200)|eval after|^  (teacher|student)|^exit status|^demo:" "$OUT/demo-$f.txt"; cat "$OUT/demo-$f.time"
    grep -E "^step" "$OUT/demo-$f.txt" | tail -1
done
echo "== done $(el)"
