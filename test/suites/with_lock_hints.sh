#!/usr/bin/env bash
# pglocks_with_lock in autocommit keeps each lock until the statement's transaction ends:
# two statements taking A then B and B then A deadlock, and the error's hint names the
# helper and what to do (test/stress/with_lock_deadlock.py). The full-lock-table hint is in
# the regression suite (sql/with_lock.sql).
#
# Run by scripts/test.sh against its server (PG* exported); run alone, it starts its own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
PY=/usr/bin/python3

if [ -z "${PGHOST:-}" ]; then
    pglocks_setup
    pglocks_start_server
fi
ensure_packages python3 python3-psycopg2 postgresql-client-"$PGLOCKS_PGVER"
export PATH="${PGLOCKS_BINDIR:-/usr/lib/postgresql/$PGLOCKS_PGVER/bin}:$PATH"

db=pglocks_hints
cleanup() {
    local rc=$?
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    pglocks_stop_server
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION pglocks"
timeout 120 "$PY" "$here/../stress/with_lock_deadlock.py" --dsn "dbname=$db"
