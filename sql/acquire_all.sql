-- pglocks_acquire_all and pglocks_release_all(keys) (1.1), one session.
-- Locks are taken in ascending lock-key order, duplicates once.
SELECT pglocks_acquire_all(ARRAY['b', 'a', 'c', 'a']);
SELECT key, lock_key, holds FROM pglocks_held();
SELECT key FROM unnest(ARRAY['a', 'b', 'c']) AS key ORDER BY pglocks_key(key);
SELECT pglocks_release_all(ARRAY['a', 'b', 'c', 'c']);
SELECT count(*) AS held_rows FROM pglocks_held();

-- bigint keys, shared mode, transaction scope.
BEGIN;
SELECT pglocks_acquire_all(ARRAY[30, -5, 10]::bigint[], shared => true, scope => 'transaction');
SELECT key, shared, scope FROM pglocks_held();
COMMIT;
SELECT count(*) AS held_rows FROM pglocks_held();

-- An empty set is trivially held; a try and a timeout on free locks succeed.
SELECT pglocks_acquire_all(ARRAY[]::text[]), pglocks_acquire_all(ARRAY['x'], wait => false),
       pglocks_acquire_all(ARRAY['y'], timeout => '1s');
SELECT pglocks_release_all(ARRAY['x', 'y', 'not-held']);
SELECT pglocks_release_all(ARRAY['x']::text[]);

-- Bad input.
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;
SELECT pg_temp.err($$SELECT pglocks_acquire_all(NULL::text[])$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a', NULL])$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY[1, NULL]::bigint[])$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a'], scope => 'x')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a'], timeout => '-1s')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a'], shared => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a'], wait => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a'], scope => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a'], reentrant => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['a'], wait => false, timeout => '1s')$$);
SELECT pg_temp.err($$SELECT pglocks_release_all(ARRAY['a'], NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_release_all(NULL::bigint[])$$);
SELECT count(*) AS held_rows FROM pglocks_held();

-- The lock table fills part-way through a set: nothing of the set stays held.
DO $$
BEGIN
  PERFORM pglocks_acquire_all(ARRAY(SELECT i::bigint FROM generate_series(1, 200000) i));
EXCEPTION WHEN out_of_memory THEN
  RAISE NOTICE 'stopped with %', SQLSTATE;
END $$;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- A million keys: the call is cancellable while it reads, sorts and takes them (here
-- statement_timeout ends it before the lock table could fill), and nothing stays held.
CREATE TEMP TABLE million AS SELECT ARRAY(SELECT 'k' || i FROM generate_series(1, 1000000) i) AS keys;
SET statement_timeout = '100ms';
SELECT pglocks_acquire_all(keys) FROM million;
SELECT pglocks_release_all(keys) FROM million;
RESET statement_timeout;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
DROP TABLE million;

-- A set with a lock this session holds already: the set takes a hold of its own, in its
-- own scope, and the older hold stays through the set's whole life.
SELECT pglocks_acquire('pre');
BEGIN;
SELECT pglocks_acquire_all(ARRAY['pre', 'other'], scope => 'transaction');
SELECT key, scope, holds FROM pglocks_held() ORDER BY key, scope;
COMMIT;
SELECT key, scope, holds FROM pglocks_held() ORDER BY key, scope;
SELECT pglocks_acquire_all(ARRAY['other', 'pre']);
SELECT pglocks_release_all(ARRAY['pre', 'other']);
SELECT key, scope, holds FROM pglocks_held() ORDER BY key, scope;
SELECT pglocks_release('pre');
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- release_all(keys, shared) releases the holds of that mode only; bigint keys, a key
-- named twice released once.
SELECT pglocks_acquire_all(ARRAY['s1', 's2'], shared => true), pglocks_acquire('s1');
SELECT pglocks_release_all(ARRAY['s1', 's2'], shared => true);
SELECT key, shared, holds FROM pglocks_held();
SELECT pglocks_release_all(ARRAY['s1']);
SELECT pglocks_acquire_all(ARRAY[5, 6]::bigint[], shared => true), pglocks_acquire(5::bigint, shared => true);
SELECT pglocks_release_all(ARRAY[6, 5, 5]::bigint[], true);
SELECT key, shared, holds FROM pglocks_held();
SELECT pglocks_release(5::bigint, shared => true);
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
