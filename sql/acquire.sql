-- Session-scope acquire in the three key forms: the same lock as the core functions,
-- shared and exclusive modes, counted holds, positional and named calls.

-- The text form takes the lock pg_advisory_lock(pglocks_key(key)) takes.
SELECT pglocks_acquire('nightly-report', shared => false, wait => true);
SELECT l.classid, l.objid, l.objsubid, l.mode, l.granted,
       ((l.classid::bigint << 32) | l.objid::bigint) = pglocks_key('nightly-report') AS same_key
FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid();
SELECT key, lock_key = pglocks_key('nightly-report') AS lock_key_ok, shared, scope, holds,
       acquired_at BETWEEN now() - interval '1 minute' AND clock_timestamp() AS acquired_at_ok
FROM pglocks_held();

-- Holds are counted: each needs its own release, and the server keeps one lock.
SELECT pglocks_acquire('nightly-report', false, true);  -- positional form
SELECT key, holds FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pglocks_release('nightly-report');
SELECT key, holds FROM pglocks_held();
SELECT pglocks_release('nightly-report');
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- bigint and integer-pair forms, shown by their numeric keys.
SELECT pglocks_acquire(42), pglocks_acquire(-9223372036854775808), pglocks_acquire(7, -3);
SELECT key, lock_key, shared, scope, holds FROM pglocks_held();
SELECT classid, objid, objsubid, mode FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY objsubid, classid, objid;
SELECT pglocks_release(42), pglocks_release(-9223372036854775808), pglocks_release(7, -3);

-- Shared holds; the same session may also hold the exclusive mode of the same lock.
SELECT pglocks_acquire('shared-one', shared => true), pglocks_acquire('shared-one', shared => true);
SELECT pglocks_acquire('shared-one');
SELECT key, shared, holds FROM pglocks_held() ORDER BY shared;
SELECT mode, count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() GROUP BY mode ORDER BY mode;
SELECT pglocks_release('shared-one', shared => true), pglocks_release('shared-one'),
       pglocks_release('shared-one'), pglocks_release('shared-one', true), pglocks_release('shared-one', true);

-- wait => false and a zero or positive timeout on a free lock take it at once.
SELECT pglocks_acquire('free', wait => false), pglocks_acquire('free', timeout => '0'),
       pglocks_acquire('free', timeout => '5s');
SELECT key, holds FROM pglocks_held();

-- A text key and the bigint it hashes to name the same lock; the first name given is shown.
SELECT pglocks_acquire(pglocks_key('free'));
SELECT key, holds FROM pglocks_held();
SELECT pglocks_release_all();
SELECT count(*) AS held_rows FROM pglocks_held();

-- Holds in several scopes and modes: release_all counts each.
SELECT pglocks_acquire('a'), pglocks_acquire('a'), pglocks_acquire('b', shared => true), pglocks_acquire(1, 1);
SELECT pglocks_release_all();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pglocks_release_all();

-- Names are kept up to 1 KiB, clipped on a character boundary.
SELECT pglocks_acquire(repeat('é', 600));
SELECT octet_length(key) AS name_bytes, char_length(key) AS name_chars, lock_key = pglocks_key(repeat('é', 600)) AS full_key_hashed
FROM pglocks_held();
SELECT pglocks_release(repeat('é', 600));

-- 10,000 holds (10 each of 1,000 locks) are listed and released.
SELECT count(*) FILTER (WHERE pglocks_acquire((i % 1000)::bigint)) AS taken FROM generate_series(1, 10000) AS i;
SELECT count(*) AS held_rows, sum(holds) AS holds FROM pglocks_held();
SELECT pglocks_release_all();

-- Filling the server's lock table fails with its own error and hint; pglocks' bookkeeping
-- still matches the server's lock table exactly afterwards.
DO $$
BEGIN
  FOR i IN 1..10000000 LOOP
    PERFORM pglocks_acquire(i::bigint);
  END LOOP;
EXCEPTION WHEN out_of_memory THEN
  RAISE NOTICE 'stopped with %: %', SQLSTATE, SQLERRM;
END $$;
SELECT (SELECT sum(holds) FROM pglocks_held()) =
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS consistent,
       (SELECT sum(holds) FROM pglocks_held()) > 1000 AS filled;
SELECT pglocks_release_all() > 1000 AS released;
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pglocks_acquire('after-full'), pglocks_release('after-full');
