#!/usr/bin/env bash
# Runs every pglocks test: installs what is missing (Debian, as root), builds and installs
# pglocks, starts a throwaway server (or uses the one PGHOST names), then runs
#   format        every C++ file of the repository against .clang-format (clang-format 14)
#   unit          GoogleTest suite of the pure C++ code
#   regress       pg_regress suites (sql/, expected/)
#   isolation     isolation-tester specs (test/isolation/)
#   pg13 pg17 pg18 the regression and isolation suites built against, and run on a server of,
#                 PostgreSQL 13, 17 and 18, with pglocks preloaded, and the semaphore
#                 suites there, then the TAP tests and the statistics eviction suite on
#                 servers of that major (scripts/matrix.sh)
#   pg19          builds against PostgreSQL 19's headers (no server of 19 to run)
#   test/suites/* scripts for clusters, poolers, clients and stress (each exits non-zero on failure)
# Everything else runs on the system's PostgreSQL 15. Ends with the line "N passed, N failed".
#
# Usage: scripts/test.sh [suite ...]     (default: all; names as listed above, e.g. regress, pg17)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGLOCKS_ROOT"

pglocks_setup
pglocks_start_server

passed=0
failed=0
failed_names=()
run_suite() {
    local name=$1
    shift
    log "suite: $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "ok - $name"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "not ok - $name"
    fi
}

show_diffs() {
    for f in regression.diffs output_iso/regression.diffs; do
        [ -s "$f" ] && { echo "--- $f"; head -c 20000 "$f"; }
    done
    return 1
}

# Every C++ file (src/, test/unit/, test/fuzz/), formatted as .clang-format says.
suite_format() {
    ensure_packages clang-format-14
    local files
    mapfile -t files < <(find src test -name '*.cpp' -o -name '*.hpp' | sort)
    [ ${#files[@]} -gt 0 ] || return 1
    clang-format-14 --dry-run -Werror "${files[@]}"
}
suite_unit() { make -s unittest; }
suite_regress() { make -s installcheck ISOLATION= || show_diffs; }
suite_isolation() { make -s installcheck REGRESS= || show_diffs; }

wanted=("$@")
want() {
    [ ${#wanted[@]} -eq 0 ] && return 0
    local w
    for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

want format && run_suite format suite_format
want unit && run_suite unit suite_unit
want regress && run_suite regress suite_regress
want isolation && run_suite isolation suite_isolation
for major in 13 17 18 19; do
    want pg$major && run_suite pg$major bash scripts/matrix.sh $major
done
for script in test/suites/*.sh; do
    [ -e "$script" ] || continue
    name=$(basename "$script" .sh)
    want "$name" && run_suite "$name" bash "$script"
done

echo
[ $failed -gt 0 ] && echo "failed suites: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
