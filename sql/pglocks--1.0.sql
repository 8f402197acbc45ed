-- pglocks 1.0: named advisory locks in PostgreSQL's own advisory-lock space.
\echo Use "CREATE EXTENSION pglocks" to load this file. \quit

-- Keys --------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.pglocks_key(key pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_key'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.pglocks_key(pg_catalog.text) IS
'bigint lock key of a text key: first 8 bytes of SHA-256 over its UTF-8 bytes, big-endian';

CREATE FUNCTION @extschema@.pglocks_crc32(key pg_catalog.text)
RETURNS pg_catalog.int4
AS 'MODULE_PATHNAME', 'pglocks_crc32'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.pglocks_crc32(pg_catalog.text) IS
'zlib CRC-32 of the UTF-8 bytes as a signed integer, the key of CRC-32 based lock libraries';

-- Acquire -----------------------------------------------------------------------------
-- Not STRICT: a NULL key or option is an error naming the argument, and a NULL timeout
-- (the default) means no limit.

CREATE FUNCTION @extschema@.pglocks_acquire(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_acquire(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_acquire(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_acquire(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'take a named advisory lock: shared or exclusive, waiting, trying or waiting at most timeout, for the session or the transaction';
COMMENT ON FUNCTION @extschema@.pglocks_acquire(pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'take the advisory lock pg_advisory_lock(key) takes';
COMMENT ON FUNCTION @extschema@.pglocks_acquire(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'take the advisory lock pg_advisory_lock(key1, key2) takes';

-- Release -----------------------------------------------------------------------------

CREATE FUNCTION @extschema@.pglocks_release(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_release_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_release(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_release_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_release(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_release_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_release(pg_catalog.text, pg_catalog.bool) IS
'release the newest hold of this lock and mode taken through pglocks; false if none';
COMMENT ON FUNCTION @extschema@.pglocks_release(pg_catalog.int8, pg_catalog.bool) IS
'release the newest hold of this lock and mode taken through pglocks; false if none';
COMMENT ON FUNCTION @extschema@.pglocks_release(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool) IS
'release the newest hold of this lock and mode taken through pglocks; false if none';

CREATE FUNCTION @extschema@.pglocks_release_all()
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_release_all'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_release_all() IS
'release every hold this session took through pglocks, in every scope; returns how many';

-- The scoped-release helper -------------------------------------------------------------

CREATE FUNCTION @extschema@.pglocks_with_lock(
    key pg_catalog.text,
    command pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_with_lock_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_with_lock(
    key pg_catalog.int8,
    command pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_with_lock_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_with_lock(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    command pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_with_lock_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_with_lock(pg_catalog.text, pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval) IS
'take the lock, run command as the calling role, release the lock however the command ends; false (command not run) if the lock was not obtained';
COMMENT ON FUNCTION @extschema@.pglocks_with_lock(pg_catalog.int8, pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval) IS
'pglocks_with_lock on the advisory lock pg_advisory_lock(key) takes';
COMMENT ON FUNCTION @extschema@.pglocks_with_lock(pg_catalog.int4, pg_catalog.int4, pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval) IS
'pglocks_with_lock on the advisory lock pg_advisory_lock(key1, key2) takes';

-- Introspection -------------------------------------------------------------------------

CREATE FUNCTION @extschema@.pglocks_held(
    OUT key pg_catalog.text,
    OUT lock_key pg_catalog.int8,
    OUT shared pg_catalog.bool,
    OUT scope pg_catalog.text,
    OUT holds pg_catalog.int4,
    OUT acquired_at pg_catalog.timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pglocks_held'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10;

COMMENT ON FUNCTION @extschema@.pglocks_held() IS
'this session''s pglocks holds: one row per lock, mode and scope, oldest first';

CREATE FUNCTION @extschema@.pglocks_locks_data(
    OUT pid pg_catalog.int4,
    OUT application_name pg_catalog.text,
    OUT key pg_catalog.text,
    OUT lock_key pg_catalog.int8,
    OUT key1 pg_catalog.int4,
    OUT key2 pg_catalog.int4,
    OUT shared pg_catalog.bool,
    OUT granted pg_catalog.bool,
    OUT held_since pg_catalog.timestamptz,
    OUT waiting_since pg_catalog.timestamptz,
    OUT blocked_by pg_catalog.int4[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pglocks_locks_data'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;

COMMENT ON FUNCTION @extschema@.pglocks_locks_data() IS
'the rows of the pglocks_locks view';

CREATE VIEW @extschema@.pglocks_locks AS
SELECT d.pid, d.application_name, d.key, d.lock_key, d.key1, d.key2, d.shared, d.granted,
       d.held_since, d.waiting_since,
       pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
           CASE WHEN d.granted THEN d.held_since ELSE d.waiting_since END AS duration,
       d.blocked_by
FROM @extschema@.pglocks_locks_data() AS d;

COMMENT ON VIEW @extschema@.pglocks_locks IS
'every advisory lock of the current database, granted or awaited, from every session, by name where known';

GRANT SELECT ON @extschema@.pglocks_locks TO PUBLIC;
