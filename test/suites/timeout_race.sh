#!/usr/bin/env bash
# Releases racing timed waits: runs test/stress/timeout_race.py for a bounded time against the
# test server and fails on any round where pglocks_acquire's answer disagrees with the
# server's lock table or with pglocks_held(); then runs test/stress/timeout_edge.py, where
# sessions loop server-side timed acquires with a 1 ms timeout against a holder that keeps
# taking and releasing the lock, so that pglocks' own timeout meets the grant hundreds of
# thousands of times, and fails on any error or hold left behind.
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
# PGLOCKS_RACE_SECONDS sets the duration of the first part (default 20), PGLOCKS_RACE_SEED
# replays it; PGLOCKS_EDGE_SECONDS the duration of the second (default 40).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"

# Debian's interpreter, not whatever python3 comes first on PATH: python3-psycopg2 is
# installed for it.
PY=/usr/bin/python3


if [ -z "${PGHOST:-}" ]; then
    pglocks_setup
    pglocks_start_server
fi
ensure_packages python3 python3-psycopg2 postgresql-client-"$PGLOCKS_PGVER"
export PATH="${PGLOCKS_BINDIR:-/usr/lib/postgresql/$PGLOCKS_PGVER/bin}:$PATH"

db=pglocks_race
cleanup() {
    local rc=$?
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    pglocks_stop_server
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION pglocks"

seconds=${PGLOCKS_RACE_SECONDS:-20}
args=(--dsn "dbname=$db" --seconds "$seconds")
[ -n "${PGLOCKS_RACE_SEED:-}" ] && args+=(--seed "$PGLOCKS_RACE_SEED")
# The rounds stop at the time limit; the outer limit only guards against a hang.
timeout $((seconds * 3 + 60)) "$PY" "$here/../stress/timeout_race.py" "${args[@]}"

edge_seconds=${PGLOCKS_EDGE_SECONDS:-40}
timeout $((edge_seconds * 3 + 60)) "$PY" "$here/../stress/timeout_edge.py" --dsn "dbname=$db" \
    --seconds "$edge_seconds"
