#!/usr/bin/env bash
# Fuzzes the pure C++ code of pglocks (src/lock_key.cpp, src/holds_registry.cpp) with the
# libFuzzer targets of test/fuzz, built by clang 14 with AddressSanitizer and
# UndefinedBehaviorSanitizer, for a fixed budget split between the targets. Exits non-zero
# on the first failing input, after printing it and the command that replays it.
#
# Usage: scripts/fuzz.sh [seconds]        (default 60, for all targets together)
#   FUZZ_WORK=dir   keep the builds, corpora and failing inputs there (default: a temporary
#                   directory, removed at exit); a kept corpus makes the next run start deeper.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
budget=${1:-60}
targets=(lock_key holds_registry)

source "$(dirname "$0")/lib.sh"
ensure_packages clang-14 libclang-rt-14-dev zlib1g-dev

if [ -n "${FUZZ_WORK:-}" ]; then
    work=$FUZZ_WORK
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/pglocks-fuzz.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi

flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -Wall -Wextra -Werror -I"$root/src")
clang++-14 "${flags[@]}" "$root/test/fuzz/fuzz_lock_key.cpp" "$root/src/lock_key.cpp" -lz \
    -o "$work/fuzz_lock_key"
clang++-14 "${flags[@]}" "$root/test/fuzz/fuzz_holds_registry.cpp" \
    "$root/src/holds_registry.cpp" "$root/src/lock_key.cpp" -o "$work/fuzz_holds_registry"

share=$((budget / ${#targets[@]}))
[ $share -ge 1 ] || share=1
status=0
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t"
    log=$work/$t.log
    start=$(date +%s)
    # The process gets a hard limit too: a hang in the code under test must end the run.
    if timeout $((share + 60)) "$work/fuzz_$t" -max_total_time="$share" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$t-" \
        "$work/corpus/$t" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz_$t: ${runs:-?} inputs in $(($(date +%s) - start)) s, no failure"
    else
        status=1
        echo "fuzz_$t: FAILED"
        grep -v '^#[0-9]' "$log" | tail -n 40
        for crash in "$work/$t"-*; do
            [ -e "$crash" ] || continue
            echo "failing input $crash (hex):"
            od -An -tx1 -v "$crash" | head -n 20
            echo "replay: $work/fuzz_$t $crash   (keep it with FUZZ_WORK=dir)"
        done
    fi
done
exit $status
