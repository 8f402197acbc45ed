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

-- pglocks' count taken away by a core unlock, then the core functions take the same lock
-- again: pglocks_release finds nothing of its own (false, no WARNING) and leaves the core
-- hold alone. client_min_messages shows warnings here.
SET client_min_messages = notice;
SELECT pglocks_acquire(100::bigint);
SELECT pg_advisory_unlock(100);
SELECT pg_advisory_lock(100);
SELECT pglocks_release(100::bigint);
SELECT count(*) AS core_hold_left FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 100 AND granted;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT pg_advisory_unlock(100);

-- The same with a core transaction lock.
BEGIN;
SELECT pglocks_acquire(102::bigint);
SELECT pg_advisory_unlock(102);
SELECT pg_advisory_xact_lock(102);
SELECT pglocks_release(102::bigint);
SELECT count(*) AS core_hold_left FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 102 AND granted;
COMMIT;
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- Shared mode: a core shared session lock taken after pglocks' count went.
SELECT pglocks_acquire(103::bigint, shared => true);
SELECT pg_advisory_unlock_shared(103);
SELECT pg_advisory_lock_shared(103);
SELECT pglocks_release(103::bigint, shared => true);
SELECT pglocks_release_all();
SELECT mode, count(*) AS core_hold_left FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 103 GROUP BY mode;
SELECT pg_advisory_unlock_shared(103);

-- pg_advisory_unlock_all, then a core lock on the same key: pglocks_release_all and
-- pglocks_held() do not count it as pglocks'.
SELECT pglocks_acquire(104::bigint), pglocks_acquire(104::bigint);
SELECT pg_advisory_unlock_all();
SELECT pg_advisory_lock(104);
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT pglocks_release_all();
SELECT count(*) AS core_hold_left FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 104;
SELECT pg_advisory_unlock(104);

-- DISCARD ALL, then a core lock: the same.
SELECT pglocks_acquire(105::bigint);
DISCARD ALL;
SELECT pg_advisory_lock(105);
SELECT pglocks_release(105::bigint);
SELECT count(*) AS core_hold_left FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 105;
SELECT pg_advisory_unlock(105);

-- A transaction-scope pglocks hold whose count a core unlock took, with a core transaction
-- lock taken after: the commit ends pglocks' hold without touching the core lock's count.
BEGIN;
SELECT pglocks_acquire(106::bigint, scope => 'transaction');
SELECT pg_advisory_unlock(106);
SELECT pg_advisory_lock(106);
COMMIT;
SELECT count(*) AS core_hold_left FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 106;
SELECT pg_advisory_unlock(106);

-- pglocks_with_lock whose command unlocks everything and takes the same lock with the core
-- function: the helper's release at the end finds its hold gone and leaves the core hold.
SELECT pglocks_with_lock(108::bigint, 'SELECT pg_advisory_unlock_all(); SELECT pg_advisory_lock(108)');
SELECT count(*) AS core_hold_left FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 108 AND granted;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT pg_advisory_unlock(108);

-- Core and pglocks counts taken together stay counted apart: each release takes its own.
SELECT pglocks_acquire(107::bigint), pg_advisory_lock(107);
SELECT pg_advisory_unlock(107);
SELECT pglocks_release(107::bigint);
SELECT pglocks_release(107::bigint);
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
