-- Transaction scope: ends with the transaction or the subtransaction that took it, can be
-- released early, and ends with the statement outside a transaction block.
CREATE VIEW my_advisory AS
  SELECT mode, count(*) AS n FROM pg_locks
  WHERE locktype = 'advisory' AND pid = pg_backend_pid() GROUP BY mode;

-- Commit ends it.
BEGIN;
SELECT pglocks_acquire('tx', scope => 'transaction');
SELECT key, scope, holds FROM pglocks_held();
SELECT * FROM my_advisory;
COMMIT;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT * FROM my_advisory;

-- Rollback ends it, and an error does too.
BEGIN;
SELECT pglocks_acquire('tx', scope => 'transaction'), pglocks_acquire(5, scope => 'transaction');
ROLLBACK;
SELECT count(*) AS held_rows FROM pglocks_held();
BEGIN;
SELECT pglocks_acquire('tx', scope => 'TRANSACTION');
SELECT 1 / 0;
ROLLBACK;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT * FROM my_advisory;

-- Released early, inside the transaction: what the core functions cannot do.
BEGIN;
SELECT pglocks_acquire('early', scope => 'transaction');
SELECT pglocks_release('early');
SELECT * FROM my_advisory;
SELECT pglocks_release('early');
COMMIT;

-- Outside a transaction block: the hold ends with the statement.
SELECT pglocks_acquire('stmt', scope => 'transaction');
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT * FROM my_advisory;

-- ROLLBACK TO SAVEPOINT takes the holds of the subtransaction and its children with it;
-- RELEASE SAVEPOINT keeps them; session holds stay in every case.
BEGIN;
SELECT pglocks_acquire('outer', scope => 'transaction');
SAVEPOINT s1;
SELECT pglocks_acquire('in-s1', scope => 'transaction');
SELECT pglocks_acquire('session-in-s1');
SAVEPOINT s2;
SELECT pglocks_acquire('in-s2', scope => 'transaction');
RELEASE SAVEPOINT s2;
SELECT key, scope FROM pglocks_held();
ROLLBACK TO SAVEPOINT s1;
SELECT key, scope FROM pglocks_held();
SAVEPOINT s3;
SELECT pglocks_acquire('kept', scope => 'transaction');
RELEASE SAVEPOINT s3;
SELECT key, scope FROM pglocks_held();
COMMIT;
SELECT key, scope FROM pglocks_held();
SELECT pglocks_release('session-in-s1');

-- A PL/pgSQL block that catches an error rolls back the holds taken inside it.
DO $$
BEGIN
  PERFORM pglocks_acquire('plpgsql-outer', scope => 'transaction');
  BEGIN
    PERFORM pglocks_acquire('plpgsql-inner', scope => 'transaction');
    RAISE EXCEPTION 'boom';
  EXCEPTION WHEN raise_exception THEN
    RAISE NOTICE 'caught; held now: %', (SELECT string_agg(key, ', ') FROM pglocks_held());
  END;
  RAISE NOTICE 'at the end of the block: %', (SELECT string_agg(key, ', ') FROM pglocks_held());
END $$;
SELECT count(*) AS held_rows FROM pglocks_held();

-- A function that locks for its transaction.
CREATE FUNCTION locked_job(job text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF NOT pglocks_acquire(job, wait => false, scope => 'transaction') THEN
    RETURN 'busy';
  END IF;
  RETURN 'ran under ' || (SELECT key || '/' || scope FROM pglocks_held() WHERE key = job);
END $$;
SELECT locked_job('reindex');
SELECT count(*) AS held_rows FROM pglocks_held();

-- Counted holds across scopes, then release_all covers both.
BEGIN;
SELECT pglocks_acquire('mix'), pglocks_acquire('mix', scope => 'transaction'), pglocks_acquire('mix', shared => true, scope => 'transaction');
SELECT key, shared, scope, holds FROM pglocks_held() ORDER BY shared, scope;
SELECT * FROM my_advisory ORDER BY mode;
SELECT pglocks_release_all();
SELECT * FROM my_advisory;
COMMIT;

-- PREPARE TRANSACTION cannot carry a transaction-scope hold.
BEGIN;
SELECT pglocks_acquire('prep', scope => 'transaction');
PREPARE TRANSACTION 'pglocks_prep';
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT count(*) AS held_rows FROM pglocks_held();
-- A hold already released behind pglocks' back does not count: here PREPARE goes on to the
-- server's own checks (the transaction made a temporary table, which no server prepares).
BEGIN;
SELECT pglocks_acquire('prep', scope => 'transaction'), pg_advisory_unlock_all();
CREATE TEMP TABLE prep_temp (x int);
\set VERBOSITY terse
PREPARE TRANSACTION 'pglocks_prep';
\set VERBOSITY default
SELECT count(*) AS held_rows FROM pglocks_held();

DROP FUNCTION locked_job(text);
DROP VIEW my_advisory;
