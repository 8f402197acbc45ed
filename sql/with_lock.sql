-- pglocks_with_lock: lock, run the command, release on every exit.
CREATE TABLE wl_log (note text, held text);

SELECT pglocks_with_lock('job', $$INSERT INTO wl_log SELECT 'ran', string_agg(key || '/' || scope, ',') FROM pglocks_held()$$);
SELECT * FROM wl_log;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- Several statements in one command.
TRUNCATE wl_log;
SELECT pglocks_with_lock(99, $$INSERT INTO wl_log VALUES ('one'); INSERT INTO wl_log VALUES ('two')$$);
SELECT pglocks_with_lock(1, 2, $$INSERT INTO wl_log VALUES ('pair')$$, shared => true, timeout => '1s');
SELECT note FROM wl_log ORDER BY note;

-- The command's error propagates, and the lock is gone afterwards.
SELECT pglocks_with_lock('job', 'SELECT 1/0');
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- Inside an open transaction: released when the call returns, not at commit.
BEGIN;
SELECT pglocks_with_lock('job', $$INSERT INTO wl_log VALUES ('in-tx')$$);
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;

-- Nested, and next to a session hold of the same lock.
TRUNCATE wl_log;
SELECT pglocks_acquire('job');
SELECT pglocks_with_lock('job', $$
  SELECT pglocks_with_lock('inner', $i$INSERT INTO wl_log SELECT 'nested', string_agg(key || '/' || scope || '/' || holds, ',' ORDER BY key) FROM pglocks_held()$i$)
$$);
SELECT * FROM wl_log;
SELECT key, scope, holds FROM pglocks_held();
SELECT pglocks_release('job');

-- In PL/pgSQL, with the error caught by an exception block.
DO $$
BEGIN
  BEGIN
    PERFORM pglocks_with_lock('job', 'SELECT no_such_column FROM wl_log');
  EXCEPTION WHEN undefined_column THEN
    RAISE NOTICE 'caught %, holds now: %', SQLSTATE, (SELECT count(*) FROM pglocks_held());
  END;
END $$;

-- pglocks_release leaves the helper's hold to the helper, also when it outlives the call
-- until the statement's commit.
SELECT pglocks_acquire('mixed'), pglocks_with_lock('mixed', 'SELECT pglocks_release(''mixed'')'),
       pglocks_release('mixed');
SELECT count(*) AS held_rows FROM pglocks_held();

-- A command that releases the lock itself does not make the helper fail.
SELECT pglocks_with_lock('job', 'SELECT pglocks_release_all()');
SELECT count(*) AS held_rows FROM pglocks_held();

-- A command run again is planned once, and replanned when what it uses changes.
CREATE TABLE wl_target (a int);
SELECT pglocks_with_lock('plan', 'INSERT INTO wl_target SELECT 1');
SELECT pglocks_with_lock('plan', 'INSERT INTO wl_target SELECT 1');
DROP TABLE wl_target;
CREATE TABLE wl_target (b text, a int);
SELECT pglocks_with_lock('plan', 'INSERT INTO wl_target SELECT 1');
SELECT * FROM wl_target;
DROP TABLE wl_target;
SELECT pglocks_with_lock('plan', 'INSERT INTO wl_target SELECT 1');
-- Statements of one command may use what earlier ones made.
SELECT pglocks_with_lock('plan', 'CREATE TEMP TABLE wl_made (x int); INSERT INTO wl_made VALUES (7)');
SELECT * FROM wl_made;
DROP TABLE wl_made;
-- A kept plan follows search_path: the same text names the table of the schema first on the
-- path when it runs.
CREATE SCHEMA wl_a;
CREATE SCHEMA wl_b;
CREATE TABLE wl_a.wl_t (s text);
CREATE TABLE wl_b.wl_t (s text);
SET search_path = wl_a, public;
SELECT pglocks_with_lock('plan', 'INSERT INTO wl_t VALUES (current_schema)') FROM generate_series(1, 3);
SET search_path = wl_b, public;
SELECT pglocks_with_lock('plan', 'INSERT INTO wl_t VALUES (current_schema)');
RESET search_path;
SELECT 'wl_a' AS schema, count(*) FROM wl_a.wl_t UNION ALL SELECT 'wl_b', count(*) FROM wl_b.wl_t;
DROP TABLE wl_a.wl_t, wl_b.wl_t;
DROP SCHEMA wl_a, wl_b;
SELECT count(*) AS held_rows FROM pglocks_held();

-- The command runs as the calling role.
CREATE ROLE pglocks_plain_role;
GRANT SELECT, INSERT ON wl_log TO pglocks_plain_role;
TRUNCATE wl_log;
-- Also when the same command ran before as another role, so that its plan is kept: the
-- privileges and the row security of the role that runs it apply. The superuser runs these
-- three times first (a table the plain role may not write; a table whose policy shows that
-- role one row of two).
CREATE TABLE wl_secret (x int);
CREATE TABLE wl_rls (x int);
INSERT INTO wl_rls VALUES (1), (2);
GRANT SELECT ON wl_rls TO pglocks_plain_role;
ALTER TABLE wl_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY wl_rls_one ON wl_rls FOR SELECT TO pglocks_plain_role USING (x = 1);
SELECT pglocks_with_lock('job', 'INSERT INTO wl_secret VALUES (1)'),
       pglocks_with_lock('job', $$INSERT INTO wl_log SELECT current_user || ' sees ' || count(*) FROM wl_rls$$)
FROM generate_series(1, 3);
SET ROLE pglocks_plain_role;
SELECT pglocks_with_lock('job', $$INSERT INTO wl_log VALUES (current_user)$$);
SELECT pglocks_with_lock('job', 'DROP TABLE wl_log');
SELECT pglocks_with_lock('job', 'INSERT INTO wl_secret VALUES (1)');
SELECT pglocks_with_lock('job', $$INSERT INTO wl_log SELECT current_user || ' sees ' || count(*) FROM wl_rls$$);
RESET ROLE;
SELECT * FROM wl_log;
SELECT count(*) AS secret_rows FROM wl_secret;
SELECT count(*) AS held_rows FROM pglocks_held();
DROP TABLE wl_log, wl_secret, wl_rls;
DROP ROLE pglocks_plain_role;

-- Outside a transaction block pglocks_with_lock keeps each lock until the statement's
-- transaction ends: a loop over many keys in one statement fills the lock table, and the
-- hint says why and what to do. Nothing stays held afterwards.
DO $$
BEGIN
  FOR i IN 1..100000 LOOP
    PERFORM pglocks_with_lock('many:' || i, 'SELECT 1');
  END LOOP;
END $$;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
-- The loop the hint suggests: inside a transaction block each lock ends with its call.
BEGIN;
DO $$
BEGIN
  FOR i IN 1..20000 LOOP
    PERFORM pglocks_with_lock('many:' || i, 'SELECT 1');
  END LOOP;
END $$;
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;
-- A PL/pgSQL block with an EXCEPTION clause runs in a subtransaction of the statement's
-- transaction, which commits only when the statement ends: outside a block the client
-- opened, each lock is kept until then; inside one, it ends with its call.
CREATE FUNCTION pg_temp.with_lock_loop() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    FOR i IN 1..100 LOOP
      PERFORM pglocks_with_lock('many:' || i, 'SELECT 1');
    END LOOP;
    RETURN (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid());
  EXCEPTION WHEN division_by_zero THEN
    RETURN -1;
  END;
END $$;
SELECT pg_temp.with_lock_loop() AS kept_in_subtransaction;
BEGIN;
SELECT pg_temp.with_lock_loop() AS kept_in_subtransaction_of_block;
COMMIT;
-- Statements sent in one query string run in one transaction, committed after the last:
-- the lock is kept until then. A block opened in the string is one the client opened.
DO $$ BEGIN PERFORM pglocks_with_lock('one-string', 'SELECT 1'); END $$ \; SELECT count(*) AS kept_in_query_string FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT count(*) AS after_query_string FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
BEGIN \; DO $$ BEGIN PERFORM pglocks_with_lock('one-string', 'SELECT 1'); END $$ \; SELECT count(*) AS block_opened_in_string FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;
-- Without pending pglocks_with_lock holds, a full lock table keeps the server's hint
-- (quotes left out: PostgreSQL 17 quotes the setting's name).
DO $$
DECLARE hint text;
BEGIN
  FOR i IN 1..100000 LOOP
    PERFORM pglocks_acquire('many:' || i, scope => 'transaction');
  END LOOP;
EXCEPTION WHEN out_of_memory THEN
  GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  RAISE NOTICE '%: % HINT: %', SQLSTATE, SQLERRM, replace(hint, '"', '');
END $$;
SELECT count(*) AS held_rows FROM pglocks_held();
