-- The acquire guards: reentrant => false, and pglocks.session_locks (allow, warn, deny).
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; detail text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
                          hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN detail <> '' THEN ' DETAIL: ' || detail ELSE '' END
         || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;

-- reentrant => false ------------------------------------------------------------------------
-- Free: a non-reentrant acquire takes the lock as any other.
SELECT pglocks_acquire('job:import', reentrant => false);
-- Held by this session, in either mode, through any form: 55006 naming the lock as given.
SELECT pg_temp.err($$SELECT pglocks_acquire('job:import', reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire('job:import', shared => true, reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire('job:import', wait => false, reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire('job:import', scope => 'transaction', reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('job:import', reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY['job:other', 'job:import'], reentrant => false)$$);
-- The failed calls took nothing: one hold of the lock, and job:other (taken before job:import
-- in lock-key order, or not at all) is not held.
SELECT key, shared, scope, holds FROM pglocks_held() ORDER BY key;
-- Inside pglocks_with_lock, whose own hold is this session's: two callers sharing one
-- connection find out there too, and the helper's hold ends with its command as always.
SELECT pg_temp.err($$SELECT pglocks_with_lock('job:wl', 'SELECT pglocks_acquire(''job:wl'', reentrant => false)')$$);
SELECT key, holds FROM pglocks_held() WHERE key = 'job:wl';
-- A key named twice in one acquire_all is one lock of the set, taken once: no 55006.
SELECT pglocks_acquire_all(ARRAY['job:twice', 'job:twice'], reentrant => false);
SELECT key, holds FROM pglocks_held() WHERE key = 'job:twice';
SELECT pglocks_release('job:twice');
-- reentrant => true (the default) still counts a second hold.
SELECT pglocks_acquire('job:import'), pglocks_acquire('job:import', reentrant => true);
SELECT key, holds FROM pglocks_held();
SELECT pglocks_release_all();

-- Numeric keys are named by their numeric form; a shared hold counts as well.
SELECT pglocks_acquire(42::bigint, shared => true), pglocks_acquire(3, 4);
SELECT pg_temp.err($$SELECT pglocks_acquire(42::bigint, reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token(42::bigint, shared => true, reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire(3, 4, shared => true, reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token(3, 4, reentrant => false)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY[41, 42]::bigint[], reentrant => false)$$);
SELECT key, shared, holds FROM pglocks_held() ORDER BY key;
SELECT pglocks_release_all();

-- A hold taken with the core functions counts too, session or transaction level.
SELECT pg_advisory_lock(pglocks_key('core:held'));
SELECT pg_temp.err($$SELECT pglocks_acquire('core:held', reentrant => false)$$);
SELECT pg_advisory_unlock(pglocks_key('core:held'));
BEGIN;
SELECT pg_advisory_xact_lock_shared(7, 8);
SELECT pg_temp.err($$SELECT pglocks_acquire(7, 8, reentrant => false)$$);
COMMIT;
-- Released (by any means): free again.
SELECT pglocks_acquire('core:held', reentrant => false), pglocks_acquire(7, 8, reentrant => false);
SELECT pg_advisory_unlock_all();
SELECT pglocks_acquire('core:held', reentrant => false) AS after_unlock_all;
SELECT pglocks_release_all();

-- Two callers sharing one connection: each takes the job lock without reentrancy, and the
-- second finds out instead of running the job alongside the first.
CREATE FUNCTION pg_temp.run_import(caller text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pglocks_acquire('job:import', scope => 'transaction', reentrant => false);
  RETURN caller || ' ran';
EXCEPTION WHEN object_in_use THEN
  RETURN caller || ' found the job running: ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.nightly() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  -- The first caller holds the lock (until the transaction ends) when the second runs.
  RETURN NEXT pg_temp.run_import('nightly');
  RETURN NEXT pg_temp.run_import('on-demand');
END $$;
SELECT * FROM pg_temp.nightly();
-- The statement's transaction ended both.
SELECT count(*) AS held FROM pglocks_held();

-- reentrant is checked like the other options.
SELECT pg_temp.err($$SELECT pglocks_acquire('k', reentrant => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_all(ARRAY[1]::bigint[], reentrant => NULL)$$);
SELECT pg_temp.err($$CALL pglocks_acquire_detached('k', reentrant => NULL)$$);

-- pglocks_acquire_detached: a top-level CALL, so its errors are shown as they come.
SELECT pglocks_acquire('job:detached');
CALL pglocks_acquire_detached('job:detached', reentrant => false);
\echo :LAST_ERROR_SQLSTATE
CALL pglocks_acquire_detached(5::bigint, true, NULL, NULL, false);
CALL pglocks_acquire_detached(5::bigint, reentrant => false);
\echo :LAST_ERROR_SQLSTATE
-- reentrant comes after the INOUT parameter: a positional call with four arguments keeps
-- its meaning.
CALL pglocks_acquire_detached(5, 6, false, '1s', NULL);
CALL pglocks_acquire_detached(5, 6, false, '1s', NULL, false);
\echo :LAST_ERROR_SQLSTATE
SELECT key, shared, holds FROM pglocks_held() ORDER BY key;
SELECT pglocks_release_all();

-- pglocks.session_locks ---------------------------------------------------------------------
SHOW pglocks.session_locks;
SELECT pg_temp.err($$SET pglocks.session_locks = sometimes$$);

-- deny: every session-scope acquire, of every function and key form, is 55000 with a hint.
SET pglocks.session_locks = deny;
SELECT c, pg_temp.err(c) FROM (VALUES
  ($$SELECT pglocks_acquire('pooled:a')$$),
  ($$SELECT pglocks_acquire(11::bigint, scope => 'session')$$),
  ($$SELECT pglocks_acquire(11, 12, wait => false)$$),
  ($$SELECT pglocks_acquire_token('pooled:a')$$),
  ($$SELECT pglocks_acquire_token(11::bigint)$$),
  ($$SELECT pglocks_acquire_token(11, 12)$$),
  ($$SELECT pglocks_acquire_all(ARRAY['pooled:a', 'pooled:b'])$$),
  ($$SELECT pglocks_acquire_all(ARRAY[11, 12]::bigint[])$$)) AS t(c);
SELECT pg_temp.err($$SELECT pglocks_acquire('pooled:a')$$) AS full_error;
CALL pglocks_acquire_detached('pooled:a');
\echo :LAST_ERROR_SQLSTATE
CALL pglocks_acquire_detached(11::bigint, shared => true);
CALL pglocks_acquire_detached(11, 12, timeout => '1s');
SELECT count(*) AS held FROM pglocks_held();
-- Transaction scope and pglocks_with_lock are unaffected.
BEGIN;
SELECT pglocks_acquire('pooled:a', scope => 'transaction'),
       pglocks_acquire_token(11, 12, scope => 'transaction') > 0,
       pglocks_acquire_all(ARRAY[11, 12]::bigint[], scope => 'transaction');
SELECT key, scope FROM pglocks_held() ORDER BY key;
COMMIT;
SELECT pglocks_with_lock('pooled:a', 'SELECT 1');
SELECT count(*) AS held FROM pglocks_held();

-- warn: the session hold is taken, with a WARNING once per lock (whatever the mode and key
-- form used), per session.
SET pglocks.session_locks = warn;
SELECT pglocks_acquire('pooled:w');
SELECT pglocks_acquire('pooled:w', shared => true);
SELECT pglocks_acquire_token('pooled:w') > 0 AS token;
SELECT pglocks_acquire(pglocks_key('pooled:w'));
SELECT pglocks_acquire_all(ARRAY[21, 22]::bigint[]);
SELECT pglocks_acquire_all(ARRAY[22, 23]::bigint[]);
SELECT pglocks_acquire(21, 22);
CALL pglocks_acquire_detached('pooled:d');
CALL pglocks_acquire_detached('pooled:d');
BEGIN;
SELECT pglocks_acquire('pooled:t', scope => 'transaction');
COMMIT;
SELECT pglocks_with_lock('pooled:t', 'SELECT 1');
SELECT key, shared, holds FROM pglocks_held() ORDER BY key, shared;
SELECT pglocks_release_all();
-- Released and taken again: already reported in this session.
SELECT pglocks_acquire('pooled:w');
SELECT pglocks_release_all();
-- The set of reported locks is bounded: after 10,000 other locks it starts over, and
-- pooled:w is reported again.
SET client_min_messages = error;
SET log_min_messages = error;
SELECT count(*) FROM generate_series(1, 10000) i
WHERE pglocks_acquire(-i::bigint) AND pglocks_release(-i::bigint);
RESET client_min_messages;
RESET log_min_messages;
SELECT pglocks_acquire('pooled:w');
SELECT pglocks_acquire(-1::bigint);
SELECT pglocks_release_all();

-- deny is checked before reentrant; allow again takes session locks silently.
SET pglocks.session_locks = deny;
SELECT pg_temp.err($$SELECT pglocks_acquire('pooled:a', reentrant => false)$$);
RESET pglocks.session_locks;
SELECT pglocks_acquire('pooled:a'), pglocks_release('pooled:a');

-- Settable per database (and per role, see test/suites/pgbouncer.sh): applied when a
-- session starts.
CREATE DATABASE pglocks_guards;
ALTER DATABASE pglocks_guards SET pglocks.session_locks = deny;
\c pglocks_guards
CREATE EXTENSION pglocks;
SHOW pglocks.session_locks;
SELECT pglocks_acquire('per-database');
SELECT pglocks_acquire('per-database', scope => 'transaction');
\c contrib_regression
DROP DATABASE pglocks_guards;
