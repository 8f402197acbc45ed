#!/usr/bin/env bash
# Memory of a backend stays flat while its waits keep failing: an acquire ended by an error
# (here lock_timeout) must not leave anything behind in pglocks' bookkeeping. Session H
# holds 2,000 locks with 1 kB names; session W tries each of them, four times over, and the
# private resident memory of W's backend (read from /proc) may not grow.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
export PGDATABASE=pglocks_leaks
dropdb --if-exists pglocks_leaks >/dev/null 2>&1 || true
createdb pglocks_leaks
# The holder's backend outlives its psql (it sleeps in a statement): end it with the database,
# so that no later suite finds its 2,000 locks.
trap 'kill $holder 2>/dev/null || true; dropdb --force --if-exists pglocks_leaks >/dev/null 2>&1 || true' EXIT
psql -X -q -c "CREATE EXTENSION pglocks" -c "
CREATE FUNCTION try_all(n int) RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE failed int := 0;
BEGIN
  FOR i IN 1..n LOOP
    BEGIN
      PERFORM pglocks_acquire(rpad('leak:' || i, 1000, 'x'));
    EXCEPTION WHEN lock_not_available THEN
      failed := failed + 1;
    END;
  END LOOP;
  RETURN failed;
END \$\$"

psql -X -q -At -c "SELECT count(*) FILTER (WHERE pglocks_acquire(rpad('leak:' || i, 1000, 'x'))) FROM generate_series(1, 2000) i" \
     -c "SELECT pg_sleep(120)" >/dev/null &
holder=$!
for _ in $(seq 100); do
    [ "$(psql -X -At -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")" = 2000 ] && break
    sleep 0.2
done

out=$(psql -X -At -c "SET lock_timeout = '1ms'" \
  -c "SELECT pg_backend_pid()" \
  -c "SELECT try_all(5)" -c "SELECT try_all(5)" -c "SELECT pg_sleep(0)" \
  -c "SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'RssAnon:\s+(\d+)'))[1]" \
  -c "SELECT try_all(2000)" -c "SELECT try_all(2000)" -c "SELECT try_all(2000)" -c "SELECT try_all(2000)" \
  -c "SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'RssAnon:\s+(\d+)'))[1]" \
  -c "SELECT count(*) FROM pglocks_held()")
echo "$out" | sed 's/^/  /'
failed=$(echo "$out" | sed -n 10p)
before=$(echo "$out" | sed -n 6p)
after=$(echo "$out" | sed -n 11p)
held=$(echo "$out" | sed -n 12p)
[ "$failed" = 2000 ] || { echo "FAIL: expected 2000 failed waits per round, got $failed"; exit 1; }
[ "$held" = 0 ] || { echo "FAIL: pglocks_held() shows $held holds after failed waits"; exit 1; }
growth=$((after - before))
echo "private resident memory after a warm-up: ${before} kB, after 8,000 failed waits on 2,000 locks: ${after} kB (growth ${growth} kB)"
# Entries left behind by failed acquires of 2,000 locks with 1 kB names take about 3 MB;
# the server's own local lock table grows by about 0.5 MB to its high-water mark once.
[ "$growth" -lt 1536 ] || { echo "FAIL: the backend grew by ${growth} kB"; exit 1; }
echo "leaks: ok"
