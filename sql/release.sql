-- Release: newest hold first whatever its scope, false with no WARNING when nothing is held.
SET client_min_messages = warning;

SELECT pglocks_release('never-taken');
SELECT pglocks_release(123), pglocks_release(1, 2), pglocks_release('never-taken', shared => true);

-- The wrong mode is another lock.
SELECT pglocks_acquire('m');
SELECT pglocks_release('m', shared => true);
SELECT pglocks_release('m');

-- Newest first across scopes.
BEGIN;
SELECT pglocks_acquire('n');
SELECT pglocks_acquire('n', scope => 'transaction');
SELECT scope, holds FROM pglocks_held() ORDER BY scope;
SELECT pglocks_release('n');  -- the transaction hold, taken last
SELECT scope, holds FROM pglocks_held() ORDER BY scope;
COMMIT;
SELECT scope, holds FROM pglocks_held();  -- the session hold outlives the transaction
SELECT pglocks_release('n'), pglocks_release('n');

-- Releasing a lock another pglocks call did not take (core lock) is not pglocks' to release.
SELECT pg_advisory_lock(pglocks_key('core-only'));
SELECT pglocks_release('core-only');
SELECT count(*) AS still_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pg_advisory_unlock(pglocks_key('core-only'));
