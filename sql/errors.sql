-- Bad input: SQLSTATE, message and hint of every error path.
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;

-- NULL keys and options, every position of every function.
SELECT c, pg_temp.err(c) FROM (VALUES
  ('SELECT pglocks_acquire(NULL::text)'),
  ('SELECT pglocks_acquire(NULL::bigint)'),
  ('SELECT pglocks_acquire(NULL::int, 1)'),
  ('SELECT pglocks_acquire(1, NULL::int)'),
  ('SELECT pglocks_acquire(''k'', shared => NULL)'),
  ('SELECT pglocks_acquire(''k'', wait => NULL)'),
  ('SELECT pglocks_acquire(''k'', scope => NULL)'),
  ('SELECT pglocks_acquire(1::bigint, NULL, true)'),
  ('SELECT pglocks_acquire(1, 2, true, NULL)'),
  ('SELECT pglocks_acquire(1, 2, scope => NULL)'),
  ('SELECT pglocks_release(NULL::text)'),
  ('SELECT pglocks_release(NULL::bigint)'),
  ('SELECT pglocks_release(NULL::int, NULL::int)'),
  ('SELECT pglocks_release(''k''::text, NULL)'),
  ('SELECT pglocks_release(1, 2, NULL)'),
  ('SELECT pglocks_with_lock(NULL::text, ''SELECT 1'')'),
  ('SELECT pglocks_with_lock(''k'', NULL)'),
  ('SELECT pglocks_with_lock(1::bigint, ''SELECT 1'', NULL::boolean)'),
  ('SELECT pglocks_with_lock(1, 2, ''SELECT 1'', wait => NULL)'),
  ('SELECT pglocks_with_lock(1, NULL::int, ''SELECT 1'')')
) AS v(c);

-- The same for what 1.1 and 1.2 added (pglocks_acquire_all, the tokens and the semaphores
-- have theirs in acquire_all.sql, tokens.sql and slots.sql): reentrant, the parameters of
-- pglocks_with_lock, the detached wait. Nothing is taken by any of them.
SELECT c, pg_temp.err(c) FROM (VALUES
  ('SELECT pglocks_acquire(''k'', reentrant => NULL)'),
  ('SELECT pglocks_acquire(1, 2, reentrant => NULL)'),
  ('SELECT pglocks_with_lock(NULL::text, ''SELECT $1'', ARRAY[1])'),
  ('SELECT pglocks_with_lock(''k'', NULL, ARRAY[1])'),
  ('SELECT pglocks_with_lock(''k'', ''SELECT $1'', NULL::int[])'),
  ('SELECT pglocks_with_lock(''k'', ''SELECT $1'', ARRAY[1], shared => NULL)'),
  ('SELECT pglocks_with_lock(1, 2, ''SELECT $1'', ARRAY[1], wait => NULL)'),
  ('SELECT pglocks_with_lock(''k'', ''SELECT $1'', ARRAY[1], timeout => ''-1s'')'),
  ('CALL pglocks_acquire_detached(NULL::text)'),
  ('CALL pglocks_acquire_detached(NULL::int, 1)'),
  ('CALL pglocks_acquire_detached(''k'', shared => NULL)'),
  ('CALL pglocks_acquire_detached(''k'', reentrant => NULL)'),
  ('CALL pglocks_acquire_detached(''k'', timeout => ''-1s'')')
) AS v(c);
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- A NULL timeout is the default: no limit.
SELECT pglocks_acquire('k', timeout => NULL), pglocks_release('k');

-- Scopes.
SELECT pg_temp.err($$SELECT pglocks_acquire('k', scope => 'statement')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire(1::bigint, scope => '')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire(1, 2, scope => 'with_lock')$$);

-- Timeouts.
SELECT pg_temp.err($$SELECT pglocks_acquire('k', timeout => '-1s')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire('k', timeout => '1 day -25 hours')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire('k', wait => false, timeout => '1s')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire('k', wait => false, timeout => '0')$$);
SELECT pg_temp.err($$SELECT pglocks_with_lock('k', 'SELECT 1', wait => false, timeout => '1s')$$);
SELECT pg_temp.err($$SELECT pglocks_with_lock('k', 'SELECT 1', timeout => '-1 month')$$);
-- Months and days count (30 days a month); timeouts beyond 24 days wait without limit.
SELECT pglocks_acquire('k', timeout => '1 mon 2 days 3 hours'), pglocks_release('k');
SELECT pglocks_acquire('k', timeout => '1 microsecond'), pglocks_release('k');

-- Commands pglocks_with_lock cannot run; the lock is released all the same.
SELECT pg_temp.err($$SELECT pglocks_with_lock('k', 'COMMIT')$$);
SELECT pg_temp.err($$SELECT pglocks_with_lock('k', 'SELECT 1; ROLLBACK')$$);
SELECT pg_temp.err($$SELECT pglocks_with_lock('k', 'COPY (SELECT 1) TO STDOUT')$$);
SELECT count(*) AS held_rows FROM pglocks_held();

-- Extreme keys.
SELECT pglocks_acquire(9223372036854775807), pglocks_acquire(-2147483648, 2147483647), pglocks_acquire('');
SELECT key, lock_key FROM pglocks_held();
SELECT pglocks_release_all();

-- The setting exists (that the prefix is reserved is in settings.sql).
SHOW pglocks.allow_on_standby;

-- Standby guard: not in recovery here, so acquire works with the setting either way.
SET pglocks.allow_on_standby = on;
SELECT pglocks_acquire('k'), pglocks_release('k');
RESET pglocks.allow_on_standby;

-- A library that does not match the installed SQL: a set-returning function checks how
-- many columns the SQL declares instead of writing past them.
CREATE FUNCTION pg_temp.held_short(OUT key text, OUT lock_key bigint) RETURNS SETOF record
  AS 'pglocks', 'pglocks_held' LANGUAGE C;
CREATE FUNCTION pg_temp.locks_short(OUT pid integer, OUT application_name text) RETURNS SETOF record
  AS 'pglocks', 'pglocks_locks_data' LANGUAGE C;
SELECT pg_temp.err($$SELECT * FROM pg_temp.held_short()$$);
SELECT pg_temp.err($$SELECT * FROM pg_temp.locks_short()$$);
