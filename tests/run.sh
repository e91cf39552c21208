#!/bin/sh
# Run test binaries one after another and sum their results into one last line:
#   N passed, M failed
# Each binary prints "PASS name" / "FAIL name" / "SKIP name" lines and exits non-zero on failure.
# A binary that crashes or prints no summary counts as one failure.
#
# The tests write their students, checkpoints and teachers under build/test_*/ and build/rel_*/
# (about 6 GB for the whole suite, 1.3 GB for the largest binary, test_recipe). A binary that passed
# leaves none of the directories it made behind, so the suite fits a small disk; a failing binary
# keeps them for a look, and ARWKV_TEST_KEEP=1 keeps everything.
build=$1; shift
passed=0; failed=0; skipped=0
scratch_dirs() { for d in build/test_*/ build/rel_*/; do [ -d "$d" ] && printf '%s\n' "$d"; done; }
for t in "$@"; do
    name=$(basename "$t")
    before=$(scratch_dirs)
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | grep -c '^PASS ')
    f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
    s=$(printf '%s\n' "$out" | grep -c '^SKIP ')
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name (exit status $rc)"; f=1
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$f" -eq 0 ] && [ "${ARWKV_TEST_KEEP:-0}" = 0 ]; then
        for d in $(scratch_dirs); do
            printf '%s\n' "$before" | grep -qxF "$d" || rm -rf "$d"
        done
    fi
done
[ "$skipped" -gt 0 ] && echo "($skipped skipped: see the SKIP lines above)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
