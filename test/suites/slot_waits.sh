#!/usr/bin/env bash
# Waits for a slot of a counting semaphore: hand-off by every path that frees a slot, a full
# set, timeouts, cancels and arrival order, driven by test/stress/slot_waits.py (the isolation
# tester cannot drive a wait that is not a heavyweight-lock wait).
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
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

db=pglocks_slot_waits
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

timeout 300 "$PY" "$here/../stress/slot_waits.py" --dsn "dbname=$db"
