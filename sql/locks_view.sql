-- pglocks_locks from one session: its own locks by name, core locks by number, pairs split,
-- hold times, and the privileges that let any role read it.
SELECT pglocks_acquire('nightly-report'), pglocks_acquire(42, shared => true),
       pglocks_acquire(-1, 5), pg_advisory_lock(77);
SELECT pid = pg_backend_pid() AS mine, key, lock_key, key1, key2, shared, granted,
       held_since IS NOT NULL AS has_held_since, waiting_since, duration >= '0' AS has_duration,
       blocked_by
FROM pglocks_locks ORDER BY key;
-- application_name comes from the server's backend status
SET application_name = 'locks_view_test';
SELECT DISTINCT application_name FROM pglocks_locks;
RESET application_name;

-- A role with no special rights reads the view and uses every function.
CREATE ROLE pglocks_viewer;
SET ROLE pglocks_viewer;
SELECT count(*) AS visible FROM pglocks_locks;
SELECT pglocks_acquire('viewer-lock'), pglocks_with_lock('viewer-lock', 'SELECT 1'),
       pglocks_release('viewer-lock'), pglocks_key('x') = pglocks_key('x') AS key_ok;
RESET ROLE;
DROP ROLE pglocks_viewer;

SELECT pglocks_release_all(), pg_advisory_unlock_all();
SELECT count(*) AS left_over FROM pglocks_locks;
