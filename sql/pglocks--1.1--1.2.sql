-- pglocks 1.2: waits that hold no snapshot, counting semaphores.
\echo Use "ALTER EXTENSION pglocks UPDATE TO '1.2'" to load this file. \quit

-- Detached waits --------------------------------------------------------------------------
-- Procedures, so that a top-level CALL may commit its own transaction and wait without a
-- snapshot (see pg_detached.cpp).

CREATE PROCEDURE @extschema@.pglocks_acquire_detached(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    timeout pg_catalog.interval DEFAULT NULL,
    INOUT acquired pg_catalog.bool DEFAULT NULL)
AS 'MODULE_PATHNAME', 'pglocks_acquire_detached_text'
LANGUAGE C;

CREATE PROCEDURE @extschema@.pglocks_acquire_detached(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false,
    timeout pg_catalog.interval DEFAULT NULL,
    INOUT acquired pg_catalog.bool DEFAULT NULL)
AS 'MODULE_PATHNAME', 'pglocks_acquire_detached_bigint'
LANGUAGE C;

CREATE PROCEDURE @extschema@.pglocks_acquire_detached(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false,
    timeout pg_catalog.interval DEFAULT NULL,
    INOUT acquired pg_catalog.bool DEFAULT NULL)
AS 'MODULE_PATHNAME', 'pglocks_acquire_detached_pair'
LANGUAGE C;

COMMENT ON PROCEDURE @extschema@.pglocks_acquire_detached(pg_catalog.text, pg_catalog.bool, pg_catalog.interval, pg_catalog.bool) IS
'take a session lock, waiting (at most timeout) without a snapshot or transaction id; CALL it outside a transaction block';
COMMENT ON PROCEDURE @extschema@.pglocks_acquire_detached(pg_catalog.int8, pg_catalog.bool, pg_catalog.interval, pg_catalog.bool) IS
'pglocks_acquire_detached on the lock pg_advisory_lock(key) takes';
COMMENT ON PROCEDURE @extschema@.pglocks_acquire_detached(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.interval, pg_catalog.bool) IS
'pglocks_acquire_detached on the lock pg_advisory_lock(key1, key2) takes';

-- Counting semaphores --------------------------------------------------------------------
-- Slot i of semaphore key is the exclusive lock pglocks_key(key || E'\0' || i) would give
-- if text could hold a zero byte (see pg_slots.cpp and the README).

CREATE FUNCTION @extschema@.pglocks_acquire_slot(
    key pg_catalog.text,
    slots pg_catalog.int4,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.int4
AS 'MODULE_PATHNAME', 'pglocks_acquire_slot'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_acquire_slot(pg_catalog.text, pg_catalog.int4, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'take one of the slots of a counting semaphore, waiting (at most timeout) in arrival order; the slot number (0 to slots - 1), or NULL when none was obtained';

CREATE FUNCTION @extschema@.pglocks_release_slot(
    key pg_catalog.text,
    slot pg_catalog.int4)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_release_slot'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_release_slot(pg_catalog.text, pg_catalog.int4) IS
'release a slot taken by pglocks_acquire_slot; false when this session does not hold it';
