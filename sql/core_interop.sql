-- Locks released behind pglocks' back: pglocks_held() tells the truth afterwards, and no
-- pglocks call warns or fails because of it.
SET client_min_messages = warning;

-- pg_advisory_unlock on the same key.
SELECT pglocks_acquire('x');
SELECT pg_advisory_unlock(pglocks_key('x'));
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT pglocks_release('x');
SELECT pglocks_acquire('x'), pglocks_release('x');

-- Counted holds all go with the server's single count.
SELECT pglocks_acquire(11), pglocks_acquire(11), pglocks_acquire(12);
SELECT pg_advisory_unlock(11);
SELECT key, holds FROM pglocks_held();
SELECT pglocks_acquire(11);
SELECT key, holds FROM pglocks_held() ORDER BY key;

-- pg_advisory_unlock_all().
SELECT pglocks_acquire(3, 4, shared => true);
SELECT pg_advisory_unlock_all();
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT pglocks_release_all();

-- A transaction-scope hold released behind our back ends quietly at commit.
BEGIN;
SELECT pglocks_acquire('tx', scope => 'transaction');
SELECT pg_advisory_unlock_all();
SELECT count(*) AS held_rows FROM pglocks_held();
COMMIT;

-- The same key taken by the core functions and by pglocks: one server lock, two counts.
SELECT pg_advisory_lock(77), pglocks_acquire(77);
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pglocks_release(77);
SELECT count(*) AS still_held_by_core FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pg_advisory_unlock(77);

-- DISCARD ALL, what connection pools run between clients.
SELECT pglocks_acquire('d1'), pglocks_acquire('d2', shared => true);
DISCARD ALL;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pglocks_acquire('d1'), pglocks_release('d1'), pglocks_release('d1');
