-- Fencing tokens (1.1): greater than every token before, NULL when not acquired, kept with
-- the hold, in every key form and scope.
SELECT pglocks_acquire_token('a') AS t1 \gset
SELECT pglocks_acquire_token(42) AS t2 \gset
SELECT pglocks_acquire_token(1, 2, shared => true) AS t3 \gset
SELECT :t1 < :t2 AND :t2 < :t3 AS increasing,
       :t1 >> 48 = (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline_in_high_bits;
SELECT pglocks_token('a') = :t1 AS a, pglocks_token(42) = :t2 AS b,
       pglocks_token(1, 2, shared => true) = :t3 AS pair, pglocks_token(1, 2) IS NULL AS other_mode;

-- A second hold of the same lock gets its own token; pglocks_token shows the newest, and
-- the older one again after the newest is released.
SELECT pglocks_acquire_token('a') AS t4 \gset
SELECT :t4 > :t3 AS greater, pglocks_token('a') = :t4 AS newest;
SELECT pglocks_release('a');
SELECT pglocks_token('a') = :t1 AS older_again;
-- a plain hold taken later has no token; the token of the older hold is still reported
SELECT pglocks_acquire('a'), pglocks_token('a') = :t1 AS still_t1;
SELECT pglocks_release_all();
SELECT pglocks_token('a') IS NULL AS gone, pglocks_token('never') IS NULL AS never;

-- Transaction scope: the token goes with the hold.
BEGIN;
SELECT pglocks_acquire_token('tx', scope => 'transaction') > :t4 AS in_tx;
SELECT pglocks_token('tx') IS NOT NULL AS has_token;
COMMIT;
SELECT pglocks_token('tx') IS NULL AS ended;

-- A hold lost behind pglocks' back takes its token with it: no token is reported for a
-- lock this session no longer holds through pglocks (pg_advisory_unlock_all, DISCARD ALL),
-- nor for a core hold of the same lock taken since.
SELECT pglocks_acquire_token('lost') IS NOT NULL AS issued, pg_advisory_unlock_all();
SELECT pglocks_token('lost') IS NULL AS after_unlock_all;
SELECT pglocks_acquire_token('lost') IS NOT NULL AS issued;
DISCARD ALL;
SELECT pglocks_token('lost') IS NULL AS after_discard_all;
SELECT pglocks_acquire_token('lost') IS NOT NULL AS issued,
       pg_advisory_unlock(pglocks_key('lost')) AS core_unlock, pg_advisory_lock(pglocks_key('lost'));
SELECT pglocks_token('lost') IS NULL AS after_core_relock;
SELECT pg_advisory_unlock_all();

-- Bad input as pglocks_acquire.
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;
SELECT pg_temp.err($$SELECT pglocks_acquire_token(NULL::text)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k', scope => 'forever')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k', wait => false, timeout => '1s')$$);
SELECT pg_temp.err($$SELECT pglocks_token(NULL::bigint)$$);
SELECT pg_temp.err($$SELECT pglocks_token('k'::text, NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k', shared => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k', wait => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k', scope => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k', reentrant => NULL)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k', timeout => '-1s')$$);
SELECT count(*) AS held_rows FROM pglocks_held();

-- Nobody can draw from or move the sequence directly.
-- A plain role's draw moves a sequence found below the timeline's part (here: the sequence
-- set back to its 48 low bits, as a build that kept the timeline out of it left it) and
-- stays that role. A read-only transaction gets no token (25006) and keeps no hold.
CREATE ROLE pglocks_token_user;
SELECT setval('pglocks_token_seq', last_value & ((1::bigint << 48) - 1)) > 0 AS set_back
FROM pglocks_token_seq;
SET ROLE pglocks_token_user;
SELECT pg_temp.err($$SELECT nextval('pglocks_token_seq')$$);
SELECT pg_temp.err($$SELECT setval('pglocks_token_seq', 1)$$);
SELECT pglocks_acquire_token('k') > :t4 AS plain_role_gets_tokens, current_user;
SELECT pglocks_acquire_token('k') > :t4 AS again, current_user;
BEGIN READ ONLY;
SELECT pg_temp.err($$SELECT pglocks_acquire_token('k-ro')$$);
COMMIT;
SELECT count(*) AS ro_held_rows FROM pglocks_held() WHERE key = 'k-ro';
SELECT pglocks_release_all();
RESET ROLE;
DROP ROLE pglocks_token_user;

-- The README's worked example: a paused holder's late write is refused.
CREATE TABLE report_store (id int PRIMARY KEY, body text, fence bigint NOT NULL DEFAULT 0);
INSERT INTO report_store VALUES (1, 'initial', 0);
CREATE FUNCTION store_report(p_body text, p_token bigint) RETURNS boolean LANGUAGE sql AS $$
  UPDATE report_store SET body = p_body, fence = p_token
  WHERE id = 1 AND fence <= p_token
  RETURNING true
$$;
SELECT pglocks_acquire_token('report-writer') AS token_a \gset
SELECT pglocks_release_all();  -- A loses its lock (its session ends, say)
SELECT pglocks_acquire_token('report-writer') AS token_b \gset
SELECT store_report('from B', :token_b) AS b_accepted;
SELECT store_report('from A', :token_a) AS a_accepted;
SELECT body, fence = :token_b AS fenced_by_b FROM report_store;
SELECT pglocks_release_all();
DROP FUNCTION store_report(text, bigint);
DROP TABLE report_store;

-- A token draw that fails (the sequence at its limit, as a superuser can arrange) ends the
-- hold it was drawn for, through the abort: nothing is left held, an earlier hold of the
-- same lock stays, and tokens are issued again once the sequence can move.
SELECT last_value AS seq_now FROM pglocks_token_seq \gset
ALTER SEQUENCE pglocks_token_seq MAXVALUE :seq_now;
\set VERBOSITY sqlstate
SELECT pglocks_acquire_token('tk-err');
\set VERBOSITY default
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pglocks_acquire('tk-err');
\set VERBOSITY sqlstate
SELECT pglocks_acquire_token('tk-err', scope => 'transaction');
\set VERBOSITY default
SELECT key, scope, holds FROM pglocks_held();
SELECT pglocks_release('tk-err');
BEGIN;
SELECT pglocks_acquire('tk-other', scope => 'transaction');
SAVEPOINT s;
\set VERBOSITY sqlstate
SELECT pglocks_acquire_token('tk-err');
\set VERBOSITY default
ROLLBACK TO SAVEPOINT s;
SELECT key, scope, holds FROM pglocks_held();
COMMIT;
DO $$
BEGIN
  PERFORM pglocks_acquire_token('tk-err');
EXCEPTION WHEN sequence_generator_limit_exceeded THEN
  RAISE NOTICE 'caught %', SQLSTATE;
END $$;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
ALTER SEQUENCE pglocks_token_seq NO MAXVALUE;
SELECT pglocks_acquire_token('tk-err') IS NOT NULL AS issued_again;
SELECT key, scope, holds FROM pglocks_held();
SELECT pglocks_release_all();

-- A token sequence altered away from how the extension made it (a cache, a negative
-- increment, cycling; unlogged is checked by the tokens suite, as 13 has no unlogged
-- sequences) issues no token (55000) and draws no value; the hold goes with the abort.
-- As made again, it issues.
SELECT last_value AS seq_before_alter FROM pglocks_token_seq \gset
ALTER SEQUENCE pglocks_token_seq CACHE 20;
SELECT pg_temp.err($$SELECT pglocks_acquire_token('tk-alter')$$);
ALTER SEQUENCE pglocks_token_seq CACHE 1 INCREMENT BY -1;
SELECT pg_temp.err($$SELECT pglocks_acquire_token('tk-alter')$$);
ALTER SEQUENCE pglocks_token_seq INCREMENT BY 2;
SELECT pg_temp.err($$SELECT pglocks_acquire_token('tk-alter')$$);
ALTER SEQUENCE pglocks_token_seq INCREMENT BY 1 CYCLE;
SELECT pg_temp.err($$SELECT pglocks_acquire_token('tk-alter', scope => 'transaction')$$);
SELECT last_value = :seq_before_alter AS nothing_drawn FROM pglocks_token_seq;
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
ALTER SEQUENCE pglocks_token_seq NO CYCLE;
SELECT pglocks_acquire_token('tk-alter') = :seq_before_alter + 1 AS issued_as_made;
SELECT pglocks_release_all();

-- No token is drawn in the transaction that gave the sequence a new file (an ALTER SEQUENCE
-- that rewrites it, here one that changes nothing else): a rollback, or a rollback to a
-- savepoint before the rewrite, would bring back the older file and its older value, and
-- the same tokens would be issued again. Refused (55000), nothing held; also in a
-- subtransaction of it (each pg_temp.err call is one). Once the rewrite is rolled back or
-- committed, tokens are issued again, each above the last.
SELECT last_value AS seq_before_rewrite FROM pglocks_token_seq \gset
BEGIN;
ALTER SEQUENCE pglocks_token_seq INCREMENT BY 1;
SELECT pg_temp.err($$SELECT pglocks_acquire_token('tk-rewrite')$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_token(7, 8, scope => 'transaction')$$);
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT count(*) AS server_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
ROLLBACK;
BEGIN;
SAVEPOINT before_rewrite;
ALTER SEQUENCE pglocks_token_seq INCREMENT BY 1;
RELEASE SAVEPOINT before_rewrite;
-- (the rewrite's subtransaction committed into the transaction: still refused)
SELECT pg_temp.err($$SELECT pglocks_acquire_token('tk-rewrite')$$);
ROLLBACK;
BEGIN;
SAVEPOINT before_rewrite;
ALTER SEQUENCE pglocks_token_seq INCREMENT BY 1;
SELECT pg_temp.err($$SELECT pglocks_acquire_token('tk-rewrite')$$);
ROLLBACK TO SAVEPOINT before_rewrite;
SELECT pglocks_acquire_token('tk-rewrite') = :seq_before_rewrite + 1 AS issued_after_undo;
COMMIT;
BEGIN;
ALTER SEQUENCE pglocks_token_seq INCREMENT BY 1;
COMMIT;
SELECT pglocks_acquire_token('tk-rewrite') = :seq_before_rewrite + 2 AS issued_after_commit;
SELECT pglocks_release_all();

-- DROP EXTENSION and CREATE EXTENSION again: tokens never go back, also after many draws.
CREATE DATABASE pglocks_recreate;
\c pglocks_recreate
CREATE EXTENSION pglocks;
SELECT pglocks_acquire_token('job') AS before_drop \gset
SELECT pglocks_release_all();
SELECT max(pglocks_acquire_token('job' || g) + pglocks_release_all() * 0) AS many_before
FROM generate_series(1, 20000) g \gset
DROP EXTENSION pglocks;
CREATE EXTENSION pglocks;
SELECT pglocks_acquire_token('job') AS after_create \gset
SELECT :after_create > :before_drop AS greater_than_first,
       :after_create > :many_before AS greater_than_all_before,
       :after_create >> 48 = :before_drop >> 48 AS same_timeline;
SELECT pglocks_release_all();
DROP EXTENSION pglocks;
CREATE EXTENSION pglocks;
SELECT pglocks_acquire_token('job') > :after_create AS greater_again;
SELECT pglocks_release_all();
-- Nor in the transaction that created the sequence: dropped and created again in one
-- transaction that then rolled back, the older sequence would come back with its older
-- value, below the tokens drawn from the new one.
BEGIN;
DROP EXTENSION pglocks;
CREATE EXTENSION pglocks;
SELECT pglocks_acquire_token('job');
ROLLBACK;
-- The token is the sequence's value. A sequence below this timeline's part (as a fresh one
-- is, or one of a pglocks build that kept the timeline out of it) moves up to it, keeping its
-- 48 low bits; one above it (a cluster upgraded with pg_upgrade or restored after a
-- failover, whose timeline starts at 1 again) goes on from its value.
SELECT (SELECT timeline_id FROM pg_control_checkpoint())::bigint << 48 AS tli_part \gset
SELECT setval('pglocks_token_seq', 12345);
-- (The draw that finds the sequence below takes one more value, with the lock held while it
-- moves the sequence; from a value without any timeline part, as 1.2 builds before this one
-- left it, it moves 2^20 further, above what their backends drew in the instant before.)
SELECT pglocks_acquire_token('job') = :tli_part + 12347 + (1 << 20) AS moved_up,
       (SELECT last_value FROM pglocks_token_seq) = :tli_part + 12347 + (1 << 20) AS sequence_too;
SELECT pglocks_acquire_token('job') = :tli_part + 12348 + (1 << 20) AS next_one;
-- (From an earlier timeline's part, after a failover, it keeps the low bits exactly:
-- test/suites/tokens.sh.)
SELECT setval('pglocks_token_seq', (:tli_part << 2) + 5);
SELECT pglocks_acquire_token('job') = (:tli_part << 2) + 6 AS goes_on;
SELECT pglocks_release_all();
-- Where the guarantee does not hold: a 1.1 installation starts its sequence at 1, and its
-- tokens have 1.1's layout (timeline << 40), which a 1.1 library running beside this one
-- may be issuing too.
DROP EXTENSION pglocks;
CREATE EXTENSION pglocks VERSION '1.1';
SELECT pglocks_acquire_token('job') AS token_1_1 \gset
SELECT :token_1_1 & ((1::bigint << 40) - 1) AS starts_at, :token_1_1 >> 40 AS timeline;
-- Updated to 1.2 the layout changes, and the sequence moves beyond what a 1.1 library may
-- issue (2^40).
ALTER EXTENSION pglocks UPDATE;
SELECT pglocks_acquire_token('job') > (1::bigint << 48) + (1::bigint << 40) AS beyond_1_1;
SELECT pglocks_release_all();
\c contrib_regression
DROP DATABASE pglocks_recreate;
