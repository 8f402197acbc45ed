-- pglocks 1.2: fencing tokens that never go back, waits that hold no snapshot, parameters
-- for the scoped-release helper, reentrant => false on every acquire, counting semaphores.
\echo Use "ALTER EXTENSION pglocks UPDATE TO '1.2'" to load this file. \quit

-- Fencing tokens --------------------------------------------------------------------------

-- A fresh token sequence (CREATE EXTENSION runs this script after the 1.1 one) starts at
-- half the WAL insert position, which DROP EXTENSION cannot move back and which every token
-- drawn before has stayed below (see src/pg_tokens.cpp); an updated one moves forward to it
-- if it is behind. Both start 2^40 higher still: a backend still running a 1.1 library then
-- refuses to issue tokens (its layout holds values below 2^40 only) instead of issuing
-- tokens below those of 1.2's layout. The helper function is not kept.
CREATE FUNCTION @extschema@.pglocks_token_floor() RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_token_floor'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

SELECT pg_catalog.setval('@extschema@.pglocks_token_seq',
                         GREATEST(s.last_value,
                                  pg_catalog.int8 '1099511627776' OPERATOR(pg_catalog.+)
                                      @extschema@.pglocks_token_floor()),
                         true)
FROM @extschema@.pglocks_token_seq s;

DROP FUNCTION @extschema@.pglocks_token_floor();

-- Detached waits --------------------------------------------------------------------------
-- Procedures, so that a top-level CALL may commit its own transaction and wait without a
-- snapshot (see pg_detached.cpp). reentrant follows the INOUT parameter, so that positional
-- calls CALL pglocks_acquire_detached(key, shared, timeout, NULL) keep their meaning.

CREATE PROCEDURE @extschema@.pglocks_acquire_detached(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    timeout pg_catalog.interval DEFAULT NULL,
    INOUT acquired pg_catalog.bool DEFAULT NULL,
    reentrant pg_catalog.bool DEFAULT true)
AS 'MODULE_PATHNAME', 'pglocks_acquire_detached_text'
LANGUAGE C;

CREATE PROCEDURE @extschema@.pglocks_acquire_detached(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false,
    timeout pg_catalog.interval DEFAULT NULL,
    INOUT acquired pg_catalog.bool DEFAULT NULL,
    reentrant pg_catalog.bool DEFAULT true)
AS 'MODULE_PATHNAME', 'pglocks_acquire_detached_bigint'
LANGUAGE C;

CREATE PROCEDURE @extschema@.pglocks_acquire_detached(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false,
    timeout pg_catalog.interval DEFAULT NULL,
    INOUT acquired pg_catalog.bool DEFAULT NULL,
    reentrant pg_catalog.bool DEFAULT true)
AS 'MODULE_PATHNAME', 'pglocks_acquire_detached_pair'
LANGUAGE C;

COMMENT ON PROCEDURE @extschema@.pglocks_acquire_detached(pg_catalog.text, pg_catalog.bool, pg_catalog.interval, pg_catalog.bool, pg_catalog.bool) IS
'take a session lock, waiting (at most timeout) without a snapshot or transaction id; CALL it outside a transaction block';
COMMENT ON PROCEDURE @extschema@.pglocks_acquire_detached(pg_catalog.int8, pg_catalog.bool, pg_catalog.interval, pg_catalog.bool, pg_catalog.bool) IS
'pglocks_acquire_detached on the lock pg_advisory_lock(key) takes';
COMMENT ON PROCEDURE @extschema@.pglocks_acquire_detached(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.interval, pg_catalog.bool, pg_catalog.bool) IS
'pglocks_acquire_detached on the lock pg_advisory_lock(key1, key2) takes';

-- Parameters for the scoped-release helper ---------------------------------------------
-- $1 … $n in the command take the elements of params, each of the array's element type: a
-- typed array (ARRAY[42]) for one type, or text[] with casts in the command for several.
-- The text stays constant, so it is planned once and no SQL is built from values.

CREATE FUNCTION @extschema@.pglocks_with_lock(
    key pg_catalog.text,
    command pg_catalog.text,
    params pg_catalog.anyarray,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_with_lock_params_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_with_lock(
    key pg_catalog.int8,
    command pg_catalog.text,
    params pg_catalog.anyarray,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_with_lock_params_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_with_lock(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    command pg_catalog.text,
    params pg_catalog.anyarray,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_with_lock_params_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_with_lock(pg_catalog.text, pg_catalog.text, pg_catalog.anyarray, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval) IS
'pglocks_with_lock with $1 … $n in the command bound to the elements of params';
COMMENT ON FUNCTION @extschema@.pglocks_with_lock(pg_catalog.int8, pg_catalog.text, pg_catalog.anyarray, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval) IS
'pglocks_with_lock with $1 … $n in the command bound to the elements of params';
COMMENT ON FUNCTION @extschema@.pglocks_with_lock(pg_catalog.int4, pg_catalog.int4, pg_catalog.text, pg_catalog.anyarray, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval) IS
'pglocks_with_lock with $1 … $n in the command bound to the elements of params';

-- Non-reentrant acquire -------------------------------------------------------------------
-- Every acquire form takes reentrant (last, default true): false makes an acquire of a lock
-- this session already holds an error. A new parameter means a new signature: an overload
-- beside the old one would make every call that omits it ambiguous, so each function is
-- dropped and created again (the C functions accept the old argument lists too, so a library
-- installed before ALTER EXTENSION UPDATE keeps working with the old SQL).

DROP FUNCTION @extschema@.pglocks_acquire(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'take a named advisory lock: shared or exclusive, waiting, trying or waiting at most timeout, for the session or the transaction; reentrant => false refuses a lock this session already holds';

DROP FUNCTION @extschema@.pglocks_acquire(pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire(pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'take the advisory lock pg_advisory_lock(key) takes';

DROP FUNCTION @extschema@.pglocks_acquire(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'take the advisory lock pg_advisory_lock(key1, key2) takes';

DROP FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire_token(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_acquire_token_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'pglocks_acquire that returns a fencing token (greater than every token issued before in this database), or NULL when not acquired';

DROP FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire_token(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_acquire_token_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'pglocks_acquire that returns a fencing token, or NULL when not acquired';

DROP FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire_token(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_acquire_token_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'pglocks_acquire that returns a fencing token, or NULL when not acquired';

DROP FUNCTION @extschema@.pglocks_acquire_all(pg_catalog.text[], pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire_all(
    keys pg_catalog.text[],
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_all_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire_all(pg_catalog.text[], pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'take every lock of the set in ascending lock-key order, all or nothing; the timeout covers the whole set';

DROP FUNCTION @extschema@.pglocks_acquire_all(pg_catalog.int8[], pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text);
CREATE FUNCTION @extschema@.pglocks_acquire_all(
    keys pg_catalog.int8[],
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session',
    reentrant pg_catalog.bool DEFAULT true)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_all_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pglocks_acquire_all(pg_catalog.int8[], pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text, pg_catalog.bool) IS
'take every lock of the set in ascending lock-key order, all or nothing; the timeout covers the whole set';

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

-- Statistics by name --------------------------------------------------------------------
-- Kept in shared memory: needs pglocks in shared_preload_libraries (else an error, 55000).

CREATE FUNCTION @extschema@.pglocks_stats(
    OUT dbid pg_catalog.oid,
    OUT userid pg_catalog.oid,
    OUT key pg_catalog.text,
    OUT lock_key pg_catalog.int8,
    OUT shared pg_catalog.bool,
    OUT acquisitions pg_catalog.int8,
    OUT waits pg_catalog.int8,
    OUT failed_tries pg_catalog.int8,
    OUT timeouts pg_catalog.int8,
    OUT errors pg_catalog.int8,
    OUT total_wait_time pg_catalog.float8,
    OUT max_wait_time pg_catalog.float8,
    OUT total_hold_time pg_catalog.float8,
    OUT max_hold_time pg_catalog.float8,
    OUT last_acquired pg_catalog.timestamptz)
RETURNS SETOF pg_catalog.record
AS 'MODULE_PATHNAME', 'pglocks_stats_data'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_stats() IS
'statistics of pglocks locks per database, role, lock and mode since the last pglocks_stats_reset(); other roles'' names only for members of pg_read_all_stats';

CREATE VIEW @extschema@.pglocks_stats AS
    SELECT * FROM @extschema@.pglocks_stats();

COMMENT ON VIEW @extschema@.pglocks_stats IS
'statistics of pglocks locks per database, role, lock and mode (times in milliseconds)';

CREATE FUNCTION @extschema@.pglocks_stats_info(
    OUT dealloc pg_catalog.int8,
    OUT stats_reset pg_catalog.timestamptz)
RETURNS pg_catalog.record
AS 'MODULE_PATHNAME', 'pglocks_stats_info'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_stats_info() IS
'how many times pglocks_stats evicted rows to make room, and when it was last reset';

CREATE VIEW @extschema@.pglocks_stats_info AS
    SELECT * FROM @extschema@.pglocks_stats_info();

COMMENT ON VIEW @extschema@.pglocks_stats_info IS
'evictions of pglocks_stats and the time of its last reset';

CREATE FUNCTION @extschema@.pglocks_stats_reset()
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'pglocks_stats_reset'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_stats_reset() IS
'discard every row of pglocks_stats and the eviction count (superusers, and roles granted EXECUTE)';

-- As pg_stat_statements_reset(): reading statistics does not entitle a role to discard them.
REVOKE ALL ON FUNCTION @extschema@.pglocks_stats_reset() FROM PUBLIC;
GRANT SELECT ON @extschema@.pglocks_stats, @extschema@.pglocks_stats_info TO PUBLIC;
