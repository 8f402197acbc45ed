-- pglocks_key and pglocks_crc32: the spec's vectors, an independent check against the
-- server's own sha256(), labels, and independence from the database encoding.

SELECT k, pglocks_key(k)
FROM (VALUES (''), ('some lock'), ('orders:42'), ('Grüße'), ('日本語')) AS v(k);

SELECT k, pglocks_crc32(k)
FROM (VALUES (''), ('some lock'), ('orders:42'), ('Grüße'), ('日本語'), ('123456789')) AS v(k);

-- The algorithm restated with built-in SQL: first 8 bytes of sha256 of the UTF-8 bytes,
-- big-endian, signed. Any mismatch over these keys is listed.
CREATE FUNCTION pg_temp.reference_key(t text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT ('x' || substr(encode(sha256(convert_to(t, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint
$$;
SELECT count(*) AS keys_checked,
       count(*) FILTER (WHERE pglocks_key(k) <> pg_temp.reference_key(k)) AS mismatches
FROM (SELECT 'job-' || i || repeat('é', i % 7) || chr(1000 + i) AS k
      FROM generate_series(1, 2000) AS i) AS s;

-- Keys longer than one hashing chunk (1 MiB), ASCII and multibyte.
SELECT pglocks_key(repeat('x', 3000001)) = pg_temp.reference_key(repeat('x', 3000001)) AS long_ascii,
       pglocks_key(repeat('Ωx', 700001)) = pg_temp.reference_key(repeat('Ωx', 700001)) AS long_multibyte;

-- STRICT, IMMUTABLE, PARALLEL SAFE as declared.
SELECT pglocks_key(NULL) IS NULL AS key_null, pglocks_crc32(NULL) IS NULL AS crc_null;

-- Every function's labels, as chosen deliberately.
SELECT p.oid::regprocedure AS function,
       p.provolatile, p.proisstrict, p.proparallel, p.prosecdef
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pglocks'
ORDER BY p.oid::regprocedure::text;

-- A LATIN1 database gives the same keys for the same characters.
CREATE DATABASE pglocks_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c pglocks_latin1
SET client_encoding = 'UTF8';
CREATE EXTENSION pglocks;
SHOW server_encoding;
SELECT k, pglocks_key(k), pglocks_crc32(k)
FROM (VALUES (''), ('some lock'), ('orders:42'), ('Grüße')) AS v(k);
SELECT pglocks_key(repeat('ü', 1500000)) =
       ('x' || substr(encode(sha256(convert_to(repeat('ü', 1500000), 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint
       AS long_latin1_converted_in_chunks;
-- The locks taken by name there are the same locks: the keys in pg_locks, of a lock, a
-- slot and a set, are those of the UTF-8 names (the specification's vectors for the names;
-- the documented slot key: SHA-256 of the name's UTF-8 bytes, a zero byte and the slot).
SELECT pglocks_acquire('Grüße'), pglocks_acquire_slot('Grüße', 1) AS slot,
       pglocks_acquire_all(ARRAY['Grüße', 'some lock'], shared => true);
SELECT h.key, h.shared,
       (l.classid::bigint << 32) | l.objid::bigint = CASE h.key
           WHEN 'Grüße' THEN -559005354142841542
           WHEN 'some lock' THEN -5006958056254205714
           WHEN 'Grüße#0' THEN ('x' || left(encode(sha256(convert_to('Grüße', 'UTF8') || '\x00'::bytea
                                                         || convert_to('0', 'UTF8')), 'hex'), 16))::bit(64)::bigint
       END AS documented_key
FROM pglocks_held() h
JOIN pg_locks l ON l.locktype = 'advisory' AND l.pid = pg_backend_pid()
 AND (l.classid::bigint << 32) | l.objid::bigint = h.lock_key
 AND l.mode = CASE WHEN h.shared THEN 'ShareLock' ELSE 'ExclusiveLock' END
ORDER BY h.key, h.shared;
SELECT pglocks_release_all();
\c contrib_regression
DROP DATABASE pglocks_latin1;
