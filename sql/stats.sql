-- pglocks_stats: counts and times per database, role, lock and mode (the regression server
-- preloads pglocks). Waits, failed tries, timeouts and errors need a second session: see
-- test/isolation/specs/stats_waits.spec.
SELECT pglocks_stats_reset();
SELECT dealloc, stats_reset > now() - interval '1 minute' AS reset_now FROM pglocks_stats_info;
CREATE VIEW st AS
    SELECT key, lock_key, shared, acquisitions, waits, failed_tries, timeouts, errors,
           total_wait_time, max_wait_time, last_acquired IS NOT NULL AS has_last
    FROM pglocks_stats
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND userid = current_user::regrole;

-- Acquisitions by name, by number, by pair, per mode; a second hold of a held lock counts.
SELECT pglocks_acquire('st:a'), pglocks_acquire('st:a'), pglocks_acquire('st:a', shared => true),
       pglocks_acquire(4242), pglocks_acquire(7, 8),
       pglocks_acquire('st:b', wait => false);
SELECT pglocks_release_all();
SELECT * FROM st ORDER BY key, shared;
-- The lock key is the key's pglocks_key.
SELECT lock_key = pglocks_key('st:a') AS same_key FROM st WHERE key = 'st:a' AND NOT shared;

-- A row first made by the numeric key gets the name when the lock is taken by name.
SELECT pglocks_acquire(pglocks_key('st:late')), pglocks_release(pglocks_key('st:late'));
SELECT key = pglocks_key('st:late')::text AS numeric_key FROM st WHERE lock_key = pglocks_key('st:late');
SELECT pglocks_acquire('st:late', wait => false), pglocks_release('st:late');
SELECT key, acquisitions FROM st WHERE lock_key = pglocks_key('st:late');

-- Counting semaphores: a row per slot, whose holds it counts (a busy slot that a call skips
-- is not a failed try), and the semaphore's own row (its name, the key of its queue lock),
-- which counts the calls: here two slots obtained and a try that found both taken. A plain
-- acquire of the same name, in either mode, has rows of its own.
SELECT pglocks_acquire_slot('st:sem', 2), pglocks_acquire_slot('st:sem', 2),
       pglocks_acquire_slot('st:sem', 2, wait => false);
SELECT pglocks_release_all();
SELECT pglocks_acquire('st:sem', shared => true), pglocks_acquire('st:sem');
SELECT pglocks_release_all();
SELECT key,
       lock_key = ('x' || left(encode(sha256(convert_to('st:sem', 'UTF8') || '\x00'::bytea
                                              || convert_to('queue', 'UTF8')), 'hex'), 16))::bit(64)::bigint
           AS queue_key,
       lock_key = pglocks_key('st:sem') AS name_key,
       shared, acquisitions, failed_tries, total_hold_time > 0 AS has_hold_time
FROM pglocks_stats
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND userid = current_user::regrole AND key LIKE 'st:sem%'
ORDER BY key, queue_key, shared;

-- Hold time, counted when a hold ends, on every path.
SELECT pglocks_stats_reset();
CREATE FUNCTION held(k text) RETURNS TABLE (total_ok boolean, max_ok boolean) LANGUAGE sql AS $$
    SELECT total_hold_time >= 100 AND total_hold_time < 60000,
           max_hold_time >= 100 AND max_hold_time <= total_hold_time
    FROM pglocks_stats
    WHERE key = k AND userid = current_user::regrole
      AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) $$;
-- pglocks_release
SELECT pglocks_acquire('st:release'), pg_sleep(0.1), pglocks_release('st:release');
SELECT * FROM held('st:release');
-- pglocks_release_all
SELECT pglocks_acquire('st:all'), pg_sleep(0.1), pglocks_release_all();
SELECT * FROM held('st:all');
-- the end of a transaction
BEGIN;
SELECT pglocks_acquire('st:xact', scope => 'transaction'), pg_sleep(0.1);
COMMIT;
SELECT * FROM held('st:xact');
-- the abort of a subtransaction
BEGIN;
SAVEPOINT s;
SELECT pglocks_acquire('st:subxact', scope => 'transaction'), pg_sleep(0.1);
ROLLBACK TO SAVEPOINT s;
SELECT * FROM held('st:subxact');
COMMIT;
-- a hold lost behind pglocks' back, counted when pglocks notices (here, pglocks_held())
SELECT pglocks_acquire('st:unlock_all'), pg_sleep(0.1), pg_advisory_unlock_all();
SELECT * FROM held('st:unlock_all');
SELECT count(*) AS held_rows FROM pglocks_held();
SELECT * FROM held('st:unlock_all');
-- pglocks_with_lock
SELECT pglocks_with_lock('st:with', 'SELECT pg_sleep(0.1)');
SELECT * FROM held('st:with');
-- A token's hold and a detached wait's count as acquisitions of their lock, with their time.
SELECT pglocks_acquire_token('st:token') IS NOT NULL AS token, pg_sleep(0.1), pglocks_release('st:token');
SELECT * FROM held('st:token');
CALL pglocks_acquire_detached('st:detached');
SELECT pg_sleep(0.1), pglocks_release('st:detached');
SELECT * FROM held('st:detached');
SELECT key, acquisitions, waits, failed_tries, timeouts, errors FROM st
WHERE key IN ('st:with', 'st:token', 'st:detached') ORDER BY key;
-- A hold that has not ended has no hold time yet.
SELECT pglocks_acquire('st:open');
SELECT total_hold_time, max_hold_time FROM pglocks_stats WHERE key = 'st:open';
SELECT pglocks_release('st:open');

-- A hold taken before a reset adds its time nowhere: the row made anew after the reset (by a
-- second hold) counts the second hold's time only, whose acquisition it counted.
SELECT pglocks_acquire('st:before-reset'), pg_sleep(0.02);
SELECT pglocks_stats_reset();
SELECT pglocks_acquire('st:before-reset');
SELECT pglocks_release('st:before-reset');  -- the newest: the second hold
SELECT pglocks_release('st:before-reset');  -- the hold from before the reset
SELECT acquisitions, total_hold_time = max_hold_time AS one_hold_counted
FROM pglocks_stats WHERE key = 'st:before-reset';

-- The end of the session: a new connection sees the hold time once the old backend is gone.
SELECT pglocks_acquire('st:session'), pg_sleep(0.1);
SELECT pg_backend_pid() AS old_pid \gset
\c
CREATE FUNCTION wait_gone(p int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 500 LOOP
        IF NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = p) THEN RETURN true; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;
SELECT wait_gone(:old_pid);
DROP FUNCTION wait_gone(int);
SELECT * FROM held('st:session');

-- DISCARD ALL: noticed at the next pglocks call.
SELECT pglocks_acquire('st:discard'), pg_sleep(0.1);
DISCARD ALL;
SELECT pglocks_release('st:discard');
SELECT * FROM held('st:discard');

-- pglocks.track_stats off records nothing; only superusers change it.
SELECT pglocks_stats_reset();
SET pglocks.track_stats = off;
SELECT pglocks_acquire('st:untracked'), pglocks_release('st:untracked');
SELECT count(*) AS rows_untracked FROM pglocks_stats;
RESET pglocks.track_stats;
SELECT pglocks_acquire('st:tracked'), pglocks_release('st:tracked');
SELECT key, acquisitions FROM st;
-- Whether a hold counts is decided when it is taken: its time is counted when it ends even
-- if track_stats was turned off meanwhile, and not at all if it was taken with it off.
SELECT pglocks_acquire('st:split-on');
SET pglocks.track_stats = off;
SELECT pglocks_acquire('st:split-off');
SELECT pg_sleep(0.02);
SELECT pglocks_release('st:split-on');
RESET pglocks.track_stats;
SELECT pglocks_release('st:split-off');
SELECT key, acquisitions, total_hold_time >= 20 AS hold_time_counted
FROM pglocks_stats WHERE key LIKE 'st:split%' ORDER BY key;

-- Names: another role's rows show their key to members of pg_read_all_stats only.
CREATE ROLE pglocks_stats_user;
CREATE ROLE pglocks_stats_other;
CREATE ROLE pglocks_stats_reader IN ROLE pg_read_all_stats;
SET ROLE pglocks_stats_user;
SELECT pglocks_acquire('st:secret'), pglocks_release('st:secret');
-- a name learnt after the row was made follows the same rule
SELECT pglocks_acquire(pglocks_key('st:secret-late')), pglocks_release(pglocks_key('st:secret-late')),
       pglocks_acquire('st:secret-late'), pglocks_release('st:secret-late');
SELECT key, acquisitions FROM pglocks_stats WHERE userid = current_user::regrole ORDER BY key;
-- pglocks_stats_reset and pglocks.track_stats are not for every role
SELECT pglocks_stats_reset();
SET pglocks.track_stats = off;
SET ROLE pglocks_stats_other;
SELECT key = lock_key::text AS numeric_key, acquisitions
FROM pglocks_stats WHERE userid = 'pglocks_stats_user'::regrole ORDER BY acquisitions, lock_key;
SET ROLE pglocks_stats_reader;
SELECT key, acquisitions FROM pglocks_stats WHERE userid = 'pglocks_stats_user'::regrole
ORDER BY key;
RESET ROLE;
-- A hold's time goes to the row of the role that took it, whoever releases it.
SET ROLE pglocks_stats_user;
SELECT pglocks_acquire('st:role');
RESET ROLE;
SELECT pg_sleep(0.1), pglocks_release('st:role');
SELECT userid::regrole, acquisitions, total_hold_time >= 100 AS held_100ms
FROM pglocks_stats WHERE key = 'st:role';
DROP ROLE pglocks_stats_user, pglocks_stats_other, pglocks_stats_reader;

-- One row per database: the same lock, role and mode in another database is a row of its own.
SELECT current_database() AS regress_db, current_database() || '_stats_other' AS other_db \gset
SELECT pglocks_stats_reset();
SELECT pglocks_acquire('st:db') AND pglocks_release('st:db');
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"other_db" WITH (FORCE);
RESET client_min_messages;
CREATE DATABASE :"other_db" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C';
\c :other_db
SET client_encoding = 'UTF8';
CREATE EXTENSION pglocks;
SELECT pglocks_acquire('st:db') AND pglocks_release('st:db') AND pglocks_acquire('st:db') AND pglocks_release('st:db');
-- A name is kept in its database's encoding: there, it reads as it was given.
SELECT pglocks_acquire('st:Grüße') AND pglocks_release('st:Grüße');
SELECT key, lock_key = pglocks_key('st:Grüße') AS same_key FROM pglocks_stats WHERE key LIKE 'st:Gr%';
\c :regress_db
SELECT d.datname = current_database() AS this_database, s.acquisitions
FROM pglocks_stats s JOIN pg_database d ON d.oid = s.dbid
WHERE s.lock_key = pglocks_key('st:db') AND s.userid = current_user::regrole ORDER BY 1;
-- Read from a database of another encoding, an ASCII name shows as it is and another one by
-- its numeric key (its bytes are not text of this database's encoding); from a database of
-- the same encoding, as it is; once its database is dropped, by its numeric key.
SELECT s.key, s.key = s.lock_key::text AS numeric_form
FROM pglocks_stats s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = :'other_db' ORDER BY s.key;
SELECT current_database() || '_stats_same' AS same_db,
       pg_encoding_to_char(encoding) AS this_encoding
FROM pg_database WHERE datname = current_database() \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"same_db" WITH (FORCE);
RESET client_min_messages;
CREATE DATABASE :"same_db" TEMPLATE template0 ENCODING :'this_encoding';
\c :same_db
CREATE EXTENSION pglocks;
SELECT oid AS same_oid FROM pg_database WHERE datname = current_database() \gset
SELECT pglocks_acquire('st:Grüße') AND pglocks_release('st:Grüße');
\c :regress_db
SELECT key, key = lock_key::text AS numeric_form FROM pglocks_stats WHERE dbid = :same_oid;
DROP DATABASE :"same_db" WITH (FORCE);
SELECT key, key = lock_key::text AS numeric_form FROM pglocks_stats WHERE dbid = :same_oid;
DROP DATABASE :"other_db" WITH (FORCE);

-- Reset empties the view.
SELECT pglocks_stats_reset();
SELECT count(*) AS after_reset FROM pglocks_stats;
DROP FUNCTION held(text);
DROP VIEW st;
