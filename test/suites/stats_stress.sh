#!/usr/bin/env bash
# pglocks_stats under load: 32 sessions, 1,000 keys, about 20 seconds; the counts in
# pglocks_stats equal what the clients did, exactly (test/stress/stats_stress.py).
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

db=pglocks_stats_stress
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

seconds=${PGLOCKS_STRESS_SECONDS:-20}
timeout $((seconds * 3 + 60)) "$PY" "$here/../stress/stats_stress.py" --dsn "dbname=$db" --seconds "$seconds"
