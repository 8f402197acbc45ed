-- pglocks_with_lock with parameters: $1 … $n in the command take the elements of params.
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;

CREATE TABLE wlp_counters (id int PRIMARY KEY, n int NOT NULL, note text);
INSERT INTO wlp_counters SELECT g, 0, NULL FROM generate_series(1, 5) g;

-- A typed array: every parameter has its element type.
SELECT pglocks_with_lock('row:2', 'UPDATE wlp_counters SET n = n + 1 WHERE id = $1', ARRAY[2]);
-- The same text again and again (planned once, from its second run on).
SELECT bool_and(pglocks_with_lock('row:' || g, 'UPDATE wlp_counters SET n = n + 1 WHERE id = $1', ARRAY[g]))
FROM generate_series(1, 5) g, generate_series(1, 3) r;
SELECT id, n FROM wlp_counters ORDER BY id;

-- Several types: text[] and casts in the command. NULL elements are SQL NULLs.
SELECT pglocks_with_lock(7::bigint, 'UPDATE wlp_counters SET n = $2::int, note = $3 WHERE id = $1::int',
                         ARRAY['3', '40', 'set by pair'], shared => true);
SELECT pglocks_with_lock(1, 2, 'UPDATE wlp_counters SET note = $1 WHERE id = $2::int',
                         ARRAY[NULL, '3'], timeout => '1s');
SELECT id, n, note IS NULL AS note_is_null FROM wlp_counters WHERE id = 3;

-- A value is never SQL: a quote or a semicolon is just data.
SELECT pglocks_with_lock('row:4', 'UPDATE wlp_counters SET note = $1 WHERE id = 4',
                         ARRAY[$$x'); DROP TABLE wlp_counters; --$$]);
SELECT note FROM wlp_counters WHERE id = 4;

-- No parameters: an empty array works as the form without params.
SELECT pglocks_with_lock('row:5', 'UPDATE wlp_counters SET n = n + 100 WHERE id = 5', '{}'::int[]);
SELECT n FROM wlp_counters WHERE id = 5;

-- Bad input: a clear error, and the lock is released either way.
SELECT pg_temp.err(c) FROM (VALUES
  ($$SELECT pglocks_with_lock('bad', 'SELECT $1 + $2', ARRAY[1])$$),
  ($$SELECT pglocks_with_lock('bad', 'UPDATE wlp_counters SET n = 1 WHERE id = $1', ARRAY['x'])$$),
  ($$SELECT pglocks_with_lock('bad', 'UPDATE wlp_counters SET n = 1 WHERE id = $1::int', ARRAY['x'])$$),
  ($$SELECT pglocks_with_lock('bad', 'SELECT $1', NULL::int[])$$),
  ($$SELECT pglocks_with_lock('bad', 'SELECT $1', ARRAY[[1, 2], [3, 4]])$$),
  ($$SELECT pglocks_with_lock('bad', 'SELECT 1/$1', ARRAY[0])$$)) AS t(c);
SELECT count(*) AS holds_left FROM pglocks_held();
SELECT count(*) AS locks_left FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- (Waits, tries and a lock not obtained: test/isolation/specs/with_lock_iso.spec.)

-- The forms without params still resolve as before.
SELECT pglocks_with_lock('plain', 'SELECT 1'), pglocks_with_lock('plain', 'SELECT 1', true);
DROP TABLE wlp_counters;
SELECT pg_temp.err($$SELECT pglocks_with_lock('bad', 'SELECT $1', ARRAY[ROW(1, 'a')])$$);
SELECT count(*) AS holds_left FROM pglocks_held();
