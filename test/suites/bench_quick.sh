#!/usr/bin/env bash
# Keeps the benchmark from rotting: runs bench/run.sh --quick (about a second per scenario)
# against the test server that scripts/test.sh started, without rebuilding. It passes when
# every scenario ran to completion; a missed performance target is reported in the table,
# never a failure here, because timings on a shared machine are no test.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(PGLOCKS_SKIP_BUILD=1 "$root/bench/run.sh" --quick 2>&1) || {
    echo "$out" | tail -40
    echo "FAIL: bench/run.sh --quick did not run to completion" >&2
    exit 1
}
echo "$out" | sed -n '/^scenario /,$p'
grep -q '^Targets met: ' <<<"$out" || { echo "FAIL: no results table" >&2; exit 1; }
