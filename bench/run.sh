#!/usr/bin/env bash
# The pglocks benchmark: every scenario of bench/README.md, pglocks against its comparison
# in one run, alternating, medians of several rounds. Prints a plain-text table and writes
# it as Markdown, with the machine it ran on, to bench/RESULTS.md.
#
# Usage: bench/run.sh [--quick]
#   --quick (or PGLOCKS_BENCH_QUICK=1)  about a second per scenario, for CI; writes
#                                        bench/results/quick.md and leaves RESULTS.md alone
# Starts a throwaway server, or uses the one PGHOST/PGPORT name; it works in a database of
# its own (pglocks_bench), dropped at the end. PGLOCKS_SKIP_BUILD=1 skips the build and
# install when the caller has just done them.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
BENCH_DIR="$PGLOCKS_ROOT/bench"

quick=${PGLOCKS_BENCH_QUICK:-0}
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if [ "${PGLOCKS_SKIP_BUILD:-0}" = 1 ]; then
    pglocks_install_packages
else
    pglocks_setup
fi
# 10,000 holds in one session need a lock table larger than the default; JIT off keeps
# compilation out of the timings.
pglocks_start_server "max_locks_per_transaction = 512" "jit = off"

# Debian's psycopg2 belongs to the system interpreter, not to any other python3 on PATH.
PYTHON=${PGLOCKS_BENCH_PYTHON:-/usr/bin/python3}
args=(--out "$BENCH_DIR/RESULTS.md")
limit=3600
if [ "$quick" = 1 ]; then
    args=(--quick --out "$BENCH_DIR/results/quick.md")
    limit=300
    log "benchmark, quick mode"
else
    log "benchmark, full run (about twelve minutes)"
fi

# The in-server rows on other majors of the test matrix (scripts/matrix.sh builds pglocks
# against that major and starts a throwaway server of it): PGLOCKS_BENCH_MAJORS, default 17;
# empty for none.
extra_dir=$(mktemp -d /tmp/pglocks-bench.XXXXXX)
chmod 755 "$extra_dir"
trap 'rm -rf "$extra_dir"; pglocks_stop_server' EXIT
for m in ${PGLOCKS_BENCH_MAJORS-17}; do
    matrix_args=(--bench "$extra_dir/pg$m.json")
    [ "$quick" = 1 ] && matrix_args+=(--quick)
    "$PGLOCKS_ROOT/scripts/matrix.sh" "$m" "${matrix_args[@]}" >&2
    args+=(--extra-rows "$extra_dir/pg$m.json")
done
# The driver bounds each scenario itself; this only guards against a hang.
timeout --kill-after=30 "$limit" "$PYTHON" "$BENCH_DIR/bench.py" "${args[@]}"
