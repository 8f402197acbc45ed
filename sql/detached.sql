-- pglocks_acquire_detached: a top-level CALL, outside a transaction block.
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;

CALL pglocks_acquire_detached('mig');
CALL pglocks_acquire_detached('mig', shared => false, timeout => '1s');
CALL pglocks_acquire_detached(42::bigint, shared => true);
CALL pglocks_acquire_detached(1, 2, timeout => '0');
SELECT key, shared, scope, holds FROM pglocks_held() ORDER BY key;
SELECT pglocks_release_all();

-- The INOUT argument's value going in does not matter.
CALL pglocks_acquire_detached('mig', acquired => false);
SELECT pglocks_release('mig');

-- The same lock as the core functions and pglocks_acquire take.
CALL pglocks_acquire_detached('core');
SELECT pg_advisory_unlock(pglocks_key('core')) AS core_sees_it;

-- Inside a transaction block, or called from a function: 25001, never a wait with a
-- snapshot. Arguments are checked first.
BEGIN;
CALL pglocks_acquire_detached('mig');
ROLLBACK;
BEGIN;
SELECT pg_temp.err($$CALL pglocks_acquire_detached('mig')$$);
ROLLBACK;
SELECT pg_temp.err($$CALL pglocks_acquire_detached('mig')$$);
SELECT key FROM pglocks_held();

-- Bad arguments.
SELECT pg_temp.err(c) FROM (VALUES
  ($$CALL pglocks_acquire_detached(NULL::text)$$),
  ($$CALL pglocks_acquire_detached(NULL::bigint)$$),
  ($$CALL pglocks_acquire_detached(1, NULL)$$),
  ($$CALL pglocks_acquire_detached('x', shared => NULL)$$),
  ($$CALL pglocks_acquire_detached('x', timeout => '-1s')$$)) AS t(c);
CALL pglocks_acquire_detached(NULL::text);
CALL pglocks_acquire_detached('x', timeout => '-1s');
SELECT count(*) AS holds_left FROM pglocks_held();

-- From a procedure: it may commit (and does commit the procedure's earlier work), except
-- inside a block with an EXCEPTION clause (a subtransaction).
CREATE TABLE detached_log (what text);
CREATE PROCEDURE detached_job() LANGUAGE plpgsql AS $$
DECLARE got boolean;
BEGIN
  INSERT INTO detached_log VALUES ('before');
  CALL pglocks_acquire_detached('job', acquired => got);
  INSERT INTO detached_log VALUES ('after: ' || got);
END $$;
CALL detached_job();
SELECT what FROM detached_log ORDER BY what;
SELECT pglocks_release('job');
CREATE PROCEDURE detached_job_in_block() LANGUAGE plpgsql AS $$
DECLARE got boolean;
BEGIN
  BEGIN
    CALL pglocks_acquire_detached('job', acquired => got);
  EXCEPTION WHEN division_by_zero THEN NULL;
  END;
END $$;
CALL detached_job_in_block();
CREATE PROCEDURE detached_job_with_set() LANGUAGE plpgsql SET work_mem = '2MB' AS $$
DECLARE got boolean;
BEGIN
  CALL pglocks_acquire_detached('job', acquired => got);
END $$;
CALL detached_job_with_set();
SELECT count(*) AS holds_left FROM pglocks_held();
-- A refusal whatever is held (session locks denied, a standby: TAP 003) comes before the
-- commit: the caller's work is rolled back with it. reentrant => false comes after it, as
-- the commit ends the transaction-scope holds of the caller's transaction: a lock held
-- only by them is free for the wait, one held for the session is refused (the caller's
-- work committed).
TRUNCATE detached_log;
SET pglocks.session_locks = deny;
DO $$ DECLARE got boolean; BEGIN
  INSERT INTO detached_log VALUES ('denied');
  CALL pglocks_acquire_detached('job', acquired => got);
END $$;
RESET pglocks.session_locks;
DO $$ DECLARE got boolean; BEGIN
  PERFORM pglocks_acquire('job', scope => 'transaction');
  CALL pglocks_acquire_detached('job', false, NULL, got, false);
  INSERT INTO detached_log VALUES ('held by the transaction only: ' || got);
END $$;
SELECT what FROM detached_log;
SELECT key, scope, holds FROM pglocks_held();
SELECT pglocks_release_all();
TRUNCATE detached_log;
SELECT pglocks_acquire('job');
DO $$ DECLARE got boolean; BEGIN
  INSERT INTO detached_log VALUES ('not reentrant');
  CALL pglocks_acquire_detached('job', false, NULL, got, false);
END $$;
SELECT count(*) AS rows_committed FROM detached_log;
SELECT pglocks_release_all();
DROP TABLE detached_log;
DROP PROCEDURE detached_job, detached_job_in_block, detached_job_with_set;
