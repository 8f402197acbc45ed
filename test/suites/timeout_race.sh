#!/usr/bin/env bash
# Releases racing timed waits: runs test/stress/timeout_race.py for a bounded time against the
# test server and fails on any round where pglocks_acquire's answer disagrees with the
# server's lock table or with pglocks_held(); then runs test/stress/timeout_edge.py, where
# sessions loop server-side timed acquires with a 1 ms timeout (and two more timed detached
# waits, one per round trip) against a holder that keeps taking and releasing the lock, so
# that pglocks' own timeout meets the grant hundreds of thousands of times, and fails on any
# error or hold left behind.
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
# PGLOCKS_RACE_SECONDS sets the duration of the first part (default 20), PGLOCKS_RACE_SEED
# replays it; PGLOCKS_EDGE_SECONDS the duration of the second (default 40).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

pglocks_suite_database pglocks_race
seconds=${PGLOCKS_RACE_SECONDS:-20}
args=(--seconds "$seconds")
[ -n "${PGLOCKS_RACE_SEED:-}" ] && args+=(--seed "$PGLOCKS_RACE_SEED")
# The rounds stop at the time limit; the outer limit only guards against a hang.
pglocks_suite_python $((seconds * 3 + 60)) timeout_race.py "${args[@]}"

edge_seconds=${PGLOCKS_EDGE_SECONDS:-40}
pglocks_suite_python $((edge_seconds * 3 + 60)) timeout_edge.py --seconds "$edge_seconds"
