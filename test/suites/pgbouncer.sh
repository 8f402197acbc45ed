#!/usr/bin/env bash
# pglocks behind Debian's pgbouncer in transaction-pooling mode: transaction-scope holds and
# pglocks_with_lock give mutual exclusion through the pooler, session holds do not (they stay
# on the server connection and pass to whichever client gets it next), and a role with
# ALTER ROLE ... SET pglocks.session_locks = 'deny' gets an error for a session-scope acquire
# instead of such a hold. The clients are in pgbouncer_clients.py; see docs/pooler.md for the
# reasoning.
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
ensure_packages pgbouncer python3 python3-psycopg2 postgresql-client-"$PGLOCKS_PGVER"
export PATH="${PGLOCKS_BINDIR:-/usr/lib/postgresql/$PGLOCKS_PGVER/bin}:$PATH"

db=pglocks_pooler
work=$(mktemp -d /tmp/pglocks-pgbouncer.XXXXXX)
chmod 755 "$work"
# pgbouncer refuses to run as root; it runs as the server's owner and writes its log here.
[ "$(id -u)" = 0 ] && chown postgres: "$work"
bouncer_pid=

cleanup() {
    local rc=$?
    [ -z "$bouncer_pid" ] && [ -s "$work/pgbouncer.pid" ] && bouncer_pid=$(cat "$work/pgbouncer.pid")
    if [ -n "$bouncer_pid" ] && kill -0 "$bouncer_pid" 2>/dev/null; then
        kill "$bouncer_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$bouncer_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$bouncer_pid" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ] && [ -s "$work/pgbouncer.log" ]; then
        echo "--- pgbouncer.log (tail)" >&2
        tail -n 30 "$work/pgbouncer.log" >&2
    fi
    # FORCE: the server connections pgbouncer had open may not have gone away yet.
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    psql -X -q -d postgres -c "DROP ROLE IF EXISTS pglocks_pooled_app" >/dev/null 2>&1 || true
    rm -rf "$work"
    pglocks_stop_server  # only a server this script started itself
    exit $rc
}
trap cleanup EXIT
# A trap on EXIT alone would not run when the runner is interrupted.
trap 'exit 130' INT TERM

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION pglocks"
# An application role held to transaction scope by the guard (pgbouncer_clients.py, part d).
app_role=pglocks_pooled_app
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP ROLE IF EXISTS $app_role" \
    -c "CREATE ROLE $app_role LOGIN" \
    -c "ALTER ROLE $app_role SET pglocks.session_locks = 'deny'"

port=$(free_port)
# Two pools on the same database: pglocks_pooler shares two server connections among all
# clients; pglocks_pooler_one has a single one, so consecutive clients are known to land on
# the same backend. Transaction pooling never runs server_reset_query (DISCARD ALL) between
# clients, which is what lets a session hold pass from one client to the next.
cat >"$work/pgbouncer.ini" <<EOF
[databases]
$db = host=127.0.0.1 port=$PGPORT dbname=$db pool_size=2
${db}_one = host=127.0.0.1 port=$PGPORT dbname=$db pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
server_reset_query = DISCARD ALL
server_reset_query_always = 0
ignore_startup_parameters = extra_float_digits
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
EOF
# With auth_type = trust pgbouncer still only admits users listed in the auth_file.
printf '"postgres" ""\n"%s" ""\n' "$app_role" >"$work/userlist.txt"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pgbouncer.ini" "$work/userlist.txt"

log "starting pgbouncer (transaction pooling) on 127.0.0.1:$port"
as_server_owner pgbouncer -d "$work/pgbouncer.ini"
for _ in $(seq 100); do
    [ -s "$work/pgbouncer.pid" ] && bouncer_pid=$(cat "$work/pgbouncer.pid")
    [ -n "$bouncer_pid" ] && psql -X -q -h 127.0.0.1 -p "$port" -d "$db" -c 'SELECT 1' \
        >/dev/null 2>&1 && break
    sleep 0.1
done
if [ -z "$bouncer_pid" ] || ! kill -0 "$bouncer_pid" 2>/dev/null; then
    echo "pgbouncer did not start" >&2
    exit 1
fi

timeout 120 "$PY" "$here/pgbouncer_clients.py" --port "$port" --dbname "$db"
