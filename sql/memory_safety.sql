-- Memory pglocks does not own, and plans in use. The valgrind suite runs this file under
-- memcheck, where a read of freed memory is an error; here it shows the results are right.

-- Every view and set-returning function after the statistics snapshot is discarded in the
-- same transaction (the snapshot holds the backends' application names).
BEGIN;
SELECT pglocks_acquire('ms:a'), pglocks_acquire(77::bigint), pglocks_acquire(7, 8),
       pg_advisory_lock(78);
SELECT count(*) FROM pglocks_locks WHERE pid = pg_backend_pid();
SELECT pg_stat_clear_snapshot();
SELECT application_name, key, lock_key, key1, key2, shared, granted
FROM pglocks_locks WHERE pid = pg_backend_pid() ORDER BY key;
SELECT pg_stat_clear_snapshot();
SELECT application_name, key FROM pglocks_locks_data() WHERE pid = pg_backend_pid() ORDER BY key;
SELECT pg_stat_clear_snapshot();
SELECT key, scope, holds FROM pglocks_held() ORDER BY key;
SELECT pg_stat_clear_snapshot();
SELECT count(*) FROM pglocks_locks WHERE pid = pg_backend_pid();
COMMIT;
SELECT pglocks_release_all(), pg_advisory_unlock_all();

-- pglocks_with_lock whose command calls pglocks_with_lock with varying texts: the inner
-- plans must not evict the outer plan while it runs. Cached from the second run on.
SELECT pglocks_with_lock('outer', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) FROM generate_series(1, 40) g$$);
SELECT pglocks_with_lock('outer', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) FROM generate_series(1, 40) g$$);
SELECT pglocks_with_lock('outer', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) FROM generate_series(1, 40) g$$);
SELECT pglocks_with_lock('outer', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) FROM generate_series(1, 40) g$$);

-- An inner call that fails inside a block that catches the error: the outer plan stays in
-- use, the inner one does not.
SELECT pglocks_with_lock('outer2', $o$DO $d$ BEGIN PERFORM pglocks_with_lock('inner', 'SELECT 1/0'); EXCEPTION WHEN division_by_zero THEN RAISE NOTICE 'caught'; END $d$$o$) FROM generate_series(1, 3);
SELECT pglocks_with_lock('outer', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) FROM generate_series(1, 40) g$$);

-- An inner error that ends the statement: nothing stays in use or held.
SELECT pglocks_with_lock('outer3', $$SELECT pglocks_with_lock('inner', 'SELECT 1/0')$$);
SELECT pglocks_with_lock('outer3', $$SELECT pglocks_with_lock('inner', 'SELECT 1/0')$$);
SELECT pglocks_with_lock('outer3', $$SELECT pglocks_with_lock('inner', 'SELECT 1/0')$$);
SELECT pglocks_with_lock('outer', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) FROM generate_series(1, 40) g$$);
SELECT count(*) FROM pglocks_held();

-- An error in the outer command after its inner calls ran: the error's context names the
-- outer command from its plan, which must still be there (an evicted plan's text would be
-- freed memory).
SELECT pglocks_with_lock('outer4', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) / 0 FROM generate_series(1, 40) g$$);
SELECT pglocks_with_lock('outer4', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) / 0 FROM generate_series(1, 40) g$$);
SELECT pglocks_with_lock('outer4', $$SELECT count(pglocks_with_lock('inner', 'SELECT ' || g)) / 0 FROM generate_series(1, 40) g$$);
SELECT count(*) FROM pglocks_held();
