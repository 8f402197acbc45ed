#!/usr/bin/env bash
# A short demonstration of pglocks on a throwaway server: two sessions contending for a
# named lock, a try that fails, a timed wait, shared holders, the scoped-release helper,
# pglocks_held(), the pglocks_locks view, a detached wait and pglocks_stats. Everything is removed at the end: the throwaway
# server, or, when PGHOST names an existing server, the database pglocks_demo made on it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGLOCKS_ROOT"

pglocks_setup
pglocks_start_server
export PGDATABASE=pglocks_demo
[ "${PGLOCKS_EXISTING:-0}" = 1 ] && dropdb --if-exists pglocks_demo
createdb pglocks_demo
trap 'dropdb --if-exists pglocks_demo >/dev/null 2>&1 || true; pglocks_stop_server' EXIT

q() { psql -X -q -v ON_ERROR_STOP=1 --pset=footer=off "$@"; }
say() { printf '\n\033[1m-- %s\033[0m\n' "$*"; }

q -c "CREATE EXTENSION pglocks"

say "Session A takes the named lock 'nightly-report' and keeps it for 3 seconds."
q -c "SELECT pglocks_acquire('nightly-report') AS a_acquired, pg_sleep(3), pglocks_release('nightly-report') AS a_released" >/tmp/pglocks_demo_a.$$ 2>&1 &
holder=$!
sleep 0.5

say "Session B tries it: false at once, nothing waits."
q -c "SELECT pglocks_acquire('nightly-report', wait => false) AS b_try"

say "Session B waits at most 300 ms: false when the time is up."
q -c "SELECT pglocks_acquire('nightly-report', timeout => '300ms') AS b_timed"

say "Who holds and who waits, by name (pglocks_locks), while session C waits in the queue:"
q -c "SELECT pglocks_acquire('nightly-report', timeout => '10s') AS c_got_it_after_wait" \
  -c "SELECT pglocks_release('nightly-report')" >/tmp/pglocks_demo_c.$$ 2>&1 &
waiter=$!
sleep 0.5
q -c "SELECT pid, key, shared, granted, blocked_by FROM pglocks_locks ORDER BY granted DESC, pid" \
  | sed -E 's/[0-9]{3,}/<pid>/g'

say "Session C waited in the server's lock queue and got the lock when A released it:"
wait "$holder"; wait "$waiter"
sed -n '1,3p' /tmp/pglocks_demo_c.$$
rm -f /tmp/pglocks_demo_a.$$ /tmp/pglocks_demo_c.$$

say "Shared holders coexist; an exclusive request must wait for all of them."
q -c "SELECT pglocks_acquire('catalog', shared => true) AS s1, pglocks_acquire('catalog', shared => true) AS s2_same_session" \
  -c "SELECT key, shared, scope, holds FROM pglocks_held()" -c "SELECT pg_sleep(2)" >/tmp/pglocks_demo_s.$$ 2>&1 &
reader=$!
sleep 0.7
sed -n '1,9p' /tmp/pglocks_demo_s.$$
q -c "SELECT pglocks_acquire('catalog', shared => true, wait => false) AS other_shared_try,
             pglocks_acquire('catalog', wait => false) AS other_exclusive_try"
wait "$reader"
rm -f /tmp/pglocks_demo_s.$$

say "A transaction-scope hold ends with the transaction, or earlier with pglocks_release."
q <<'SQL'
BEGIN;
SELECT pglocks_acquire('orders:42', scope => 'transaction') AS in_tx;
SELECT key, scope FROM pglocks_held();
COMMIT;
SELECT count(*) AS held_after_commit FROM pglocks_held();
SQL

say "pglocks_with_lock: lock, run the command, release, in one round trip; errors release too."
q <<'SQL'
CREATE TABLE report_runs (at timestamptz DEFAULT now(), held text);
SELECT pglocks_with_lock('nightly-report',
  $$INSERT INTO report_runs (held) SELECT string_agg(key || '/' || scope, ',') FROM pglocks_held()$$) AS ran;
SELECT held AS held_while_running FROM report_runs;
SELECT count(*) AS held_afterwards FROM pglocks_held();
SQL
q -c "SELECT pglocks_with_lock('nightly-report', 'SELECT 1/0')" 2>&1 | head -1 || true
q -c "SELECT count(*) AS locks_left_after_error FROM pg_locks WHERE locktype = 'advisory'"

say "A wait that holds nothing back (1.2): while CALL pglocks_acquire_detached waits, its session has no snapshot, so VACUUM removes rows deleted after the wait began."
q -c "CREATE TABLE scratch AS SELECT g FROM generate_series(1, 10000) g" \
  -c "SELECT pg_size_pretty(pg_relation_size('scratch')) AS scratch_before"
q -c "SELECT pglocks_acquire('migration')" -c '\! sleep 2' >/dev/null &
holder=$!
sleep 0.5
q -c "CALL pglocks_acquire_detached('migration', timeout => '10s')" >/tmp/pglocks_demo_d.$$ 2>&1 &
waiter=$!
sleep 0.5
q -c "SELECT backend_xmin IS NULL AS waiter_has_no_snapshot FROM pg_stat_activity
      WHERE wait_event_type = 'Lock' AND query LIKE 'CALL pglocks_acquire_detached%'"
q -c "DELETE FROM scratch" -c "VACUUM scratch" \
  -c "SELECT pg_size_pretty(pg_relation_size('scratch')) AS scratch_after_vacuum"
wait "$holder"; wait "$waiter"
sed -n '1,3p' /tmp/pglocks_demo_d.$$
rm -f /tmp/pglocks_demo_d.$$

say "Statistics by name (1.2): what the sessions of this demo did, per lock and mode (times in ms)."
q -c "SELECT key, shared, acquisitions, waits, failed_tries, timeouts, errors,
             round(max_wait_time) AS max_wait, round(total_hold_time) AS total_hold
      FROM pglocks_stats
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY acquisitions DESC, key" ||
    echo "(pglocks_stats needs pglocks in shared_preload_libraries)"

say "Keys are stable: the first 8 bytes of SHA-256 of the UTF-8 name, computable anywhere."
q -c "SELECT k AS key, pglocks_key(k) FROM (VALUES ('nightly-report'), ('orders:42'), ('Grüße')) AS v(k)"

if [ "${PGLOCKS_EXISTING:-0}" = 1 ]; then
    say "Done; the database pglocks_demo is dropped from the server at PGHOST=$PGHOST."
else
    say "Done; the throwaway server is removed."
fi
