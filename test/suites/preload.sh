#!/usr/bin/env bash
# pglocks_locks with and without shared_preload_libraries, and with a full name registry:
# starts its own small servers (the shared test server preloads pglocks).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

fail() { suite_fail "$@"; }
check() { suite_check "$@"; }
# poll_value TRIES EXPECTED SQL: runs SQL every 0.1 s until it prints EXPECTED, at most TRIES
# times; fails (status 1) when it never does.
poll_value() {
    local tries=$1 want=$2 sql=$3
    for _ in $(seq "$tries"); do
        [ "$(psql -X -At -c "$sql")" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

root=$(mktemp -d /tmp/pglocks-preload.XXXXXX); chmod 755 "$root"
trap 'for d in plain small full; do pglocks_own_stop "$root/$d"; done; rm -rf "$root"' EXIT

run_case() { # DIR: session A holds three named locks; B takes one of its own and looks
    pglocks_own_use "$1"
    psql -X -q -c "CREATE EXTENSION IF NOT EXISTS pglocks"
    psql -X -q -At -c "SELECT pglocks_acquire('first'), pglocks_acquire('second'), pglocks_acquire('third'), pg_sleep(3)" >/dev/null &
    local holder=$!
    poll_value 50 3 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'" || true
    # B's own locks are always named, whatever the configuration.
    seen=$(psql -X -At -c "SELECT pglocks_acquire('mine')" \
                      -c "SELECT string_agg(CASE WHEN key IN ('first','second','third','mine') THEN key ELSE 'numeric' END, ',' ORDER BY lock_key)
                          FROM pglocks_locks")
    wait $holder
    echo "$seen" | tail -n 1
}

# 1. Without the preload: everything works; other sessions' text keys are numeric.
pglocks_own_start "$root/plain" "pglocks.max_stats = 1000" "pglocks.max_named_locks = 100"
expected_plain=$(psql -X -At -h "$root/plain" -p "$(sed -n 's/^port = //p' "$root/plain/data/postgresql.conf")" -U postgres -d postgres -c \
  "CREATE EXTENSION pglocks; SELECT string_agg(CASE WHEN k = 'mine' THEN k ELSE 'numeric' END, ',' ORDER BY pglocks_key(k)) FROM unnest(ARRAY['first','second','third','mine']) k" | tail -n 1)
got=$(run_case "$root/plain")
check "without shared_preload_libraries other sessions' keys are numeric" "$expected_plain" "$got"
# 1a. The server-start settings named in postgresql.conf without the preload: no session
#     that loads the library warns about them.
pglocks_own_use "$root/plain"
got=$(psql -X -At -c "SELECT pglocks_acquire('w'), pglocks_release('w')" -c "SHOW pglocks.max_stats" 2>&1 | tr '\n' ' ')
check "without shared_preload_libraries, pglocks.max_stats in postgresql.conf: no warning" "t|t 1000 " "$got"
# 1b. Counting semaphores without the preload: free slots and tries work; a call that would
#     have to wait fails with 55000 and its hint, at once.
pglocks_own_use "$root/plain"
psql -X -q -At -c "SELECT pglocks_acquire_slot('sem', 1), pg_sleep(3)" >/dev/null &
holder=$!
poll_value 50 1 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'" || true
got=$(psql -X -At -c "SELECT coalesce(pglocks_acquire_slot('sem', 2)::text, 'null'), coalesce(pglocks_acquire_slot('sem', 1, wait => false)::text, 'null')")
check "without shared_preload_libraries a free slot is taken and a try gets NULL" "1|null" "$got"
got=$(psql -X -At -c "\set VERBOSITY verbose" -c "SELECT pglocks_acquire_slot('sem', 1, timeout => '5s')" 2>&1 |
      sed -n 's/^ERROR:  \([0-9A-Z]*\):.*/\1/p' || true)
check "without shared_preload_libraries waiting for a slot is 55000" "55000" "$got"
wait $holder

# 2. Preloaded with room for two names: the third of A's locks is shown by number, and
#    nothing fails in the acquire path.
pglocks_own_start "$root/small" "shared_preload_libraries = 'pglocks'" "pglocks.max_named_locks = 2"
got=$(run_case "$root/small")
named=$(echo "$got" | tr ',' '\n' | grep -cv numeric || true)
check "a full registry names only what fits (two of A's three, plus B's own)" 3 "$named"

# 3. Names are freed when their holders go: A's successor gets both slots.
pglocks_own_use "$root/small"
psql -X -q -At -c "SELECT pglocks_acquire('fourth'), pglocks_acquire('fifth'), pg_sleep(2)" >/dev/null &
holder=$!
sleep 1
got=$(psql -X -At -c "SELECT string_agg(key, ',' ORDER BY key) FROM pglocks_locks")
wait $holder
check "names of ended sessions are freed" "fifth,fourth" "$got"

# 4. The same after a release behind pglocks' back (DISCARD ALL) in a live session: the
#    stale names are dropped to make room, as seen from another session.
psql -X -q -At -c "SELECT pglocks_acquire('sixth'), pglocks_acquire('seventh')" -c "DISCARD ALL" \
     -c "SELECT pglocks_acquire('eighth'), pglocks_acquire('ninth'), pg_sleep(2)" >/dev/null &
holder=$!
sleep 1
got=$(psql -X -At -c "SELECT string_agg(key, ',' ORDER BY key) FROM pglocks_locks")
wait $holder
check "names of locks released by DISCARD ALL are freed" "eighth,ninth" "$got"
# 4b. A session that keeps its names to itself (pglocks.share_names = off) is shown by
#     number to others, and by name to itself.
psql -X -q -At -c "SET pglocks.share_names = off" -c "SELECT pglocks_acquire('private-a'), pg_sleep(2)" >/dev/null &
holder=$!
sleep 1
got=$(psql -X -At -c "SELECT string_agg(CASE WHEN key ~ '^-?[0-9]+$' THEN 'numeric' ELSE key END, ',') FROM pglocks_locks")
wait $holder
check "pglocks.share_names = off keeps a session's names out of other sessions' view" "numeric" "$got"
got=$(psql -X -At -c "SET pglocks.share_names = off" -c "SELECT pglocks_acquire('private-b')" \
      -c "SELECT key FROM pglocks_locks" | tail -n 1)
check "a session still sees its own names with pglocks.share_names = off" "private-b" "$got"

# 4c. pglocks_locks shows the locks of the current database only: a lock held in another
#     database is in that database's view, not in this one's.
psql -X -q -c "CREATE DATABASE pglocks_other"
psql -X -q -d pglocks_other -c "CREATE EXTENSION pglocks"
PGAPPNAME=elsewhere-holder psql -X -q -At -d pglocks_other \
    -c "SELECT pglocks_acquire('elsewhere'), pg_sleep(60)" >/dev/null 2>"$root/elsewhere.err" &
holder=$!
poll_value 100 1 "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                  WHERE l.locktype = 'advisory' AND l.granted AND d.datname = 'pglocks_other'" ||
    fail "the lock in the other database was not taken: $(cat "$root/elsewhere.err")"
got="$(psql -X -At -c "SELECT count(*) FROM pglocks_locks")|$(psql -X -At -d pglocks_other -c "SELECT string_agg(key, ',') FROM pglocks_locks")"
psql -X -q -At -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'elsewhere-holder'" >/dev/null
wait $holder || true
check "pglocks_locks shows the current database's locks only" "0|elsewhere" "$got"

# 5. The view works when the lock table is full, which is when one needs it most: B, already
#    connected, reads it while A has taken every advisory lock the server has room for.
pglocks_own_start "$root/full" "shared_preload_libraries = 'pglocks'" "max_locks_per_transaction = 10" "max_connections = 10"
pglocks_own_use "$root/full"
psql -X -q -c "CREATE EXTENSION pglocks"
PGAPPNAME=full-reader psql -X -At -c "SELECT count(*) >= 0 FROM pglocks_locks" -c "SELECT pg_sleep(2)" \
    -c "SELECT count(*) FROM pglocks_locks" -c "SELECT count(*) FROM pglocks_locks WHERE key LIKE 'fill-%'" \
    >"$root/full.out" &
reader=$!
# A starts filling once B is connected and asleep: a session that connects after the lock
# table is full cannot start (it needs locks of its own), so B must not be still connecting.
poll_value 100 1 "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'full-reader' AND query = 'SELECT pg_sleep(2)'" ||
    fail "the reader of the full lock table did not connect"
psql -X -q -At -c "DO \$\$ BEGIN FOR i IN 1..100000 LOOP PERFORM pglocks_acquire('fill-' || i); END LOOP;
                   EXCEPTION WHEN out_of_memory THEN RAISE NOTICE 'full'; END \$\$" \
            -c "SELECT pg_sleep(4)" >/dev/null 2>&1 &
filler=$!
wait "$reader" || true
wait "$filler" || true
out=$(cat "$root/full.out")
total=$(echo "$out" | sed -n 3p)
named=$(echo "$out" | sed -n 4p)
echo "  the full lock table held $total advisory locks, $named of them listed by name"
[ -n "$total" ] && [ "$total" -gt 50 ] || fail "pglocks_locks could not be read with a full lock table (got [$out])"
check "pglocks_locks reads a full lock table and names its locks" "$total" "$named"
echo "preload: all checks passed"
