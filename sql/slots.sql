-- Counting semaphores: pglocks_acquire_slot and pglocks_release_slot in one session.
-- Waiting for another session's slot is in the isolation specs (slots_*).
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;

-- The documented slot key: the first 8 bytes of SHA-256 of the name's UTF-8 bytes, a zero
-- byte and the slot number in decimal, as a signed big-endian bigint.
CREATE FUNCTION pg_temp.slot_key(name text, slot int) RETURNS bigint LANGUAGE sql AS $$
  SELECT ('x' || left(encode(sha256(convert_to(name, 'UTF8') || '\x00'::bytea
                                    || convert_to(slot::text, 'UTF8')), 'hex'), 16))::bit(64)::bigint
$$;

-- Three slots: each call takes the lowest free one; a fourth try gets NULL.
SELECT pglocks_acquire_slot('jobs', 3) AS a, pglocks_acquire_slot('jobs', 3) AS b,
       pglocks_acquire_slot('jobs', 3) AS c;
SELECT pglocks_acquire_slot('jobs', 3, wait => false) IS NULL AS full_try;
SELECT pglocks_acquire_slot('jobs', 3, timeout => '0') IS NULL AS full_zero_timeout;

-- Shown by name#slot, each an exclusive session hold whose key is the documented one.
SELECT key, lock_key = pg_temp.slot_key('jobs', substr(key, 6)::int) AS documented_key,
       shared, scope, holds
FROM pglocks_held() ORDER BY key;
SELECT key, granted, lock_key = pg_temp.slot_key('jobs', substr(key, 6)::int) AS documented_key
FROM pglocks_locks WHERE pid = pg_backend_pid() ORDER BY key;
-- Ordinary advisory locks: pg_locks shows them, and the core functions see them.
SELECT count(*) AS in_pg_locks FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND mode = 'ExclusiveLock'
  AND ((classid::bigint << 32) | objid::bigint)
      IN (pg_temp.slot_key('jobs', 0),
          pg_temp.slot_key('jobs', 1), pg_temp.slot_key('jobs', 2));
-- A plain lock of the same name, or of the name#slot text, is another lock.
SELECT pglocks_acquire('jobs', wait => false) AS plain_name_free,
       pglocks_acquire('jobs#0', wait => false) AS plain_display_name_free,
       pglocks_key('jobs') <> pg_temp.slot_key('jobs', 0) AS keys_differ;
SELECT pglocks_release('jobs'), pglocks_release('jobs#0');

-- Waiting while this session holds every slot would wait for itself.
SELECT pg_temp.err($$SELECT pglocks_acquire_slot('jobs', 3)$$);
SELECT pg_temp.err($$SELECT pglocks_acquire_slot('jobs', 3, timeout => '10ms')$$);
-- A semaphore with more slots has a free one (slot keys do not depend on the count).
SELECT pglocks_acquire_slot('jobs', 4) AS fourth;
SELECT pglocks_release_slot('jobs', 3);

-- Releasing a slot: true once, then false; the freed slot is taken next.
SELECT pglocks_release_slot('jobs', 1) AS first, pglocks_release_slot('jobs', 1) AS again;
SELECT pglocks_acquire_slot('jobs', 3) AS retaken;
SELECT pglocks_release_slot('jobs', 7) AS never_held, pglocks_release_slot('other', 0) AS other;
-- pglocks_release_all releases slots too.
SELECT pglocks_release_all();
SELECT count(*) AS held FROM pglocks_held();
SELECT count(*) AS left_in_pg_locks FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- Transaction scope: released at commit and at rollback; a subtransaction's at its abort.
BEGIN;
SELECT pglocks_acquire_slot('tx', 2, scope => 'transaction') AS slot;
SELECT key, scope FROM pglocks_held();
COMMIT;
SELECT count(*) AS held_after_commit FROM pglocks_held();
BEGIN;
SELECT pglocks_acquire_slot('tx', 2, scope => 'transaction') AS slot;
SAVEPOINT s;
SELECT pglocks_acquire_slot('tx', 2, scope => 'transaction') AS slot;
ROLLBACK TO s;
SELECT key FROM pglocks_held();
ROLLBACK;
SELECT count(*) AS held_after_rollback FROM pglocks_held();
-- A transaction-scope slot released early inside a savepoint that then rolls back stays
-- released (a release is not undone, and the slot is not released twice); so does one taken
-- and released within the savepoint.
BEGIN;
SELECT pglocks_acquire_slot('tx', 2, scope => 'transaction') AS slot;
SAVEPOINT s;
SELECT pglocks_release_slot('tx', 0) AS released;
SELECT pglocks_acquire_slot('tx', 2, scope => 'transaction') AS slot_in_savepoint;
SELECT pglocks_release_slot('tx', 0) AS released_in_savepoint;
ROLLBACK TO s;
SELECT count(*) AS held_after_rollback_to FROM pglocks_held();
SELECT count(*) AS in_pg_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pglocks_acquire_slot('tx', 1, wait => false) AS free_again, pglocks_release_slot('tx', 0);
COMMIT;
SELECT (SELECT count(*) FROM pglocks_held()) AS held_after_commit,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS server;

-- One slot is a mutex; a multibyte name keeps its characters.
SELECT pglocks_acquire_slot('Ωmega', 1) AS only_slot,
       pglocks_acquire_slot('Ωmega', 1, wait => false) IS NULL AS taken;
SELECT key, lock_key = pg_temp.slot_key('Ωmega', 0) AS documented_key FROM pglocks_held();
SELECT pglocks_release_slot('Ωmega', 0);

-- The largest semaphore: 1024 slots.
SELECT pglocks_acquire_slot('big', 1024) AS slot;
SELECT pglocks_release_slot('big', 0);

-- Bad input: SQLSTATE, message and hint.
SELECT c, pg_temp.err(c) FROM (VALUES
  ('SELECT pglocks_acquire_slot(NULL, 3)'),
  ('SELECT pglocks_acquire_slot(''k'', NULL)'),
  ('SELECT pglocks_acquire_slot(''k'', 3, wait => NULL)'),
  ('SELECT pglocks_acquire_slot(''k'', 3, scope => NULL)'),
  ('SELECT pglocks_acquire_slot(''k'', 0)'),
  ('SELECT pglocks_acquire_slot(''k'', -1)'),
  ('SELECT pglocks_acquire_slot(''k'', 1025)'),
  ('SELECT pglocks_acquire_slot(''k'', 3, timeout => ''-1s'')'),
  ('SELECT pglocks_acquire_slot(''k'', 3, wait => false, timeout => ''1s'')'),
  ('SELECT pglocks_acquire_slot(''k'', 3, scope => ''forever'')'),
  ('SELECT pglocks_release_slot(NULL, 0)'),
  ('SELECT pglocks_release_slot(''k'', NULL)'),
  ('SELECT pglocks_release_slot(''k'', -1)'),
  ('SELECT pglocks_release_slot(''k'', 1024)')
) AS t(c);
SELECT count(*) AS nothing_held FROM pglocks_held();

-- pglocks.session_locks applies to a semaphore as a whole: one warning (or error) naming it,
-- not one for every slot tried.
SET pglocks.session_locks = warn;
SELECT pglocks_acquire_slot('guarded', 3) AS first, pglocks_acquire_slot('guarded', 3) AS second;
SET pglocks.session_locks = deny;
SELECT pglocks_acquire_slot('guarded', 3);
SELECT pglocks_acquire_slot('guarded', 3, scope => 'transaction') IS NOT NULL AS transaction_scope_works;
RESET pglocks.session_locks;
SELECT pglocks_release_all();
