#!/usr/bin/env bash
# The extension dropped and created again while sessions hold, wait and are terminated, with
# keys that collide in pglocks' per-backend caches (test/stress/recreate.py says what it
# checks). Uses the server of scripts/test.sh, or starts its own when run alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
PY=/usr/bin/python3

if [ -z "${PGHOST:-}" ]; then
    pglocks_setup
    pglocks_start_server
fi
ensure_packages python3 python3-psycopg2

db=pglocks_recreate
cleanup() {
    local rc=$?
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    pglocks_stop_server
    exit $rc
}
trap cleanup EXIT
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
args=(--dsn "dbname=$db" --rounds "${PGLOCKS_RECREATE_ROUNDS:-40}")
[ -n "${PGLOCKS_RECREATE_SEED:-}" ] && args+=(--seed "$PGLOCKS_RECREATE_SEED")
timeout 300 "$PY" "$here/../stress/recreate.py" "${args[@]}"
