#!/bin/sh
# Run each libFuzzer target for a bounded time from the seed corpus the tests wrote.
build=$1; seconds=$2; shift 2
status=0
for f in "$@"; do
    name=$(basename "$f")
    corpus=$build/fuzz-corpus/$name
    mkdir -p "$corpus"
    seeds=tests/seeds/$name
    echo "== $name: $seconds s"
    if [ -d "$seeds" ]; then
        "$f" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 "$corpus" "$seeds" > "$build/$name.log" 2>&1 || status=1
    else
        "$f" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 "$corpus" > "$build/$name.log" 2>&1 || status=1
    fi
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs|ERROR|SUMMARY' "$build/$name.log" | head -5
done
if [ $status -ne 0 ]; then echo "fuzz: a target found a crash (see build/*.log)"; else echo "fuzz: no crash"; fi
exit $status
