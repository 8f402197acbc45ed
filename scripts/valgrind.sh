#!/usr/bin/env bash
# Runs the regression and isolation suites (make installcheck) against a server that runs
# under valgrind's memcheck, and fails on any memcheck error with a pglocks frame in its
# stack (or in the stack of where the bad memory came from), or when the suites fail.
#
# Debian's PostgreSQL is not built with USE_VALGRIND, so memcheck cannot see palloc's
# chunks; it still sees uninitialised bytes and every malloc'd block (the C++ side of
# pglocks allocates with malloc). Errors in PostgreSQL's own frames are counted and
# summarised but do not fail the run; test/valgrind/pglocks.supp silences the known ones.
#
# Besides the suites it runs the scenarios where memory that pglocks does not own, or shares,
# is easy to get wrong: every view and set-returning function after pg_stat_clear_snapshot()
# and nested pglocks_with_lock (the regression test memory_safety), the shared name table
# filled beyond its limit, and waiters terminated while their keys collide in pglocks'
# per-backend caches. pglocks is built with PGLOCKS_DEBUG, so the boundary also checks
# PostgreSQL's error stacks on every call.
#
# Usage: scripts/valgrind.sh [regress test ...]   (about three minutes on two cores)
#   with test names: only those regression tests and the scenarios, no isolation suite
#   VALGRIND_KEEP=1   keep the logs (their directory is printed)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGLOCKS_ROOT"

PGLOCKS_PACKAGES+=(valgrind)
export PGLOCKS_DEBUG=1
pglocks_setup
only_tests=("$@")

started=$(date +%s)
work=$(mktemp -d /tmp/pglocks-valgrind.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
mkdir -p "$work/vg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/vg"
data=$work/data
port=$(free_port)

stop_server() {
    if [ -f "$data/postmaster.pid" ]; then
        as_server_owner pg_ctl -D "$data" -m fast -t 600 stop >/dev/null 2>&1 ||
            as_server_owner pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
    fi
}
cleanup() {
    stop_server
    if [ -n "${VALGRIND_KEEP:-}" ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

as_server_owner initdb -D "$data" -A trust -U postgres -E UTF8 --no-locale --no-sync >/dev/null
cat >>"$data/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
fsync = off
max_connections = 30
shared_preload_libraries = 'pglocks'
pglocks.max_named_locks = 64
# Under valgrind, JIT and background work only add time and noise.
jit = off
autovacuum = off
max_worker_processes = 2
max_parallel_workers_per_gather = 0
EOF

log "starting the server under valgrind (logs in $work/vg)"
# The postmaster forks its backends without exec, so valgrind follows them all.
as_server_owner setsid valgrind --quiet --trace-children=yes --track-origins=yes \
    --read-var-info=no --num-callers=40 --leak-check=no --error-limit=no \
    --gen-suppressions=all --suppressions="$PGLOCKS_ROOT/test/valgrind/pglocks.supp" \
    --log-file="$work/vg/%p.log" \
    postgres -D "$data" >"$work/server.log" 2>&1 </dev/null &
for _ in $(seq 1 600); do
    pg_isready -q -h "$work" -p "$port" && break
    sleep 1
done
pg_isready -q -h "$work" -p "$port" || { cat "$work/server.log"; exit 1; }
log "server up after $(($(date +%s) - started)) s"

tests_ok=1
export PGHOST=$work PGPORT=$port PGUSER=postgres PGDATABASE=postgres
# Separately, so a failing regression suite does not keep the isolation suite from running.
if [ ${#only_tests[@]} -gt 0 ]; then
    make -s installcheck ISOLATION= REGRESS="${only_tests[*]}" ||
        { tests_ok=0; [ -s regression.diffs ] && head -c 20000 regression.diffs; }
else
    make -s installcheck ISOLATION= || { tests_ok=0; [ -s regression.diffs ] && head -c 20000 regression.diffs; }
    make -s installcheck REGRESS= ||
        { tests_ok=0; [ -s output_iso/regression.diffs ] && head -c 20000 output_iso/regression.diffs; }
fi

log "scenario: the shared name table filled beyond its 64 entries, and terminated waiters"
q() { psql -X -At -v ON_ERROR_STOP=1 "$@"; }
wait_for() { # SQL that becomes true
    for _ in $(seq 1 600); do [ "$(q -c "$1")" = t ] && return 0; sleep 0.2; done
    echo "gave up waiting for: $1" >&2
    return 1
}
named_sql="SELECT count(*) FILTER (WHERE key !~ '^-?[0-9]+\$') || '/' || count(*) FROM pglocks_locks"
scenario_ok=1
q -c "CREATE EXTENSION IF NOT EXISTS pglocks" >/dev/null
fillers=()
for i in 1 2 3 4; do
    q -c "SELECT count(pglocks_acquire('vg-fill:$i:' || g)) FROM generate_series(1, 24) g" \
      -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
    fillers+=($!)
done
wait_for "SELECT count(*) = 96 FROM pg_locks WHERE locktype = 'advisory'" || scenario_ok=0
got=$(q -c "SELECT pg_stat_clear_snapshot()" -c "$named_sql" | tail -n 1)
[ "$got" = "64/96" ] || { echo "table filled beyond its limit: expected 64/96 named, got $got"; scenario_ok=0; }
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
wait "${fillers[@]}" 2>/dev/null || true
# 'A' and 'B11' share a slot of a backend's cache of published names; 'collide-a' and
# 'collide-b752' also one of its cache of key hashes. The waiter is terminated in the queue.
for pair in "A B11" "collide-a collide-b752"; do
    set -- $pair
    q -c "SELECT pglocks_acquire('$2')" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
    holder=$!
    wait_for "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory'" || scenario_ok=0
    q -c "SELECT pglocks_acquire('$1')" -c "SELECT pglocks_acquire('$2')" >/dev/null 2>&1 &
    waiter=$!
    wait_for "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted" || scenario_ok=0
    q -c "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted" >/dev/null
    wait $waiter 2>/dev/null || true
    q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
    wait $holder 2>/dev/null || true
done
wait_for "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" ||
    scenario_ok=0
q -c "SELECT count(pglocks_acquire('vg-after:' || g)) FROM generate_series(1, 64) g" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
holder=$!
wait_for "SELECT count(*) = 64 FROM pg_locks WHERE locktype = 'advisory'" || scenario_ok=0
got=$(q -c "$named_sql")
[ "$got" = "64/64" ] || { echo "after the terminated sessions, expected 64/64 named, got $got (entries leaked)"; scenario_ok=0; }
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
wait $holder 2>/dev/null || true
[ $scenario_ok = 1 ] || { echo "the name-table scenario failed under valgrind"; tests_ok=0; }

log "stopping the server"
stop_server
elapsed=$(($(date +%s) - started))

# Each error of a log, with its suppression stanza; an error counts as pglocks' when any of
# its frames is in pglocks.so or in one of our C++ sources (PostgreSQL has none).
/usr/bin/python3 - "$work/vg" "$elapsed" "$tests_ok" <<'EOF'
import glob, re, sys
from collections import Counter

logdir, elapsed, tests_ok = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
ours = re.compile(r"pglocks|\(\w+\.(?:cpp|hpp):\d+\)")
frame = re.compile(r"^\s+(?:at|by) 0x")
errors, pglocks_errors, processes = [], [], 0
for path in sorted(glob.glob(f"{logdir}/*.log")):
    processes += 1
    block = []
    def flush():
        if block and any(frame.match(l) for l in block):
            errors.append((path, block[:]))
        block.clear()
    for raw in open(path, errors="replace"):
        line = re.sub(r"^==\d+== ?", "", raw.rstrip("\n"))
        if raw.startswith("==") and line == "":
            flush()
        elif not raw.startswith("==") and not block:
            continue  # a suppression stanza, printed after its error
        else:
            block.append(line)
    flush()

for path, block in errors:
    if any(ours.search(l) for l in block):
        pglocks_errors.append((path, block))

kinds = Counter(b[0] for _, b in errors if b[0].strip())
print(f"\nvalgrind: {processes} processes, {len(errors)} errors, "
      f"{len(pglocks_errors)} with pglocks frames; {elapsed} s in all")
for kind, n in kinds.most_common(10):
    print(f"  {n:5d}  {kind}")
for path, block in pglocks_errors[:20]:
    print(f"\n--- {path}")
    print("\n".join(block))
if not tests_ok:
    print("\nthe suites failed under valgrind")
sys.exit(1 if pglocks_errors or not tests_ok else 0)
EOF
