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
