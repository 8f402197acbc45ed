-- pglocks 1.1: fencing tokens and deadlock-free acquisition of several locks.
\echo Use "ALTER EXTENSION pglocks UPDATE TO '1.1'" to load this file. \quit

-- Fencing tokens ------------------------------------------------------------------------
-- Drawn only by pglocks_acquire_token (no role gets privileges on the sequence, so nobody
-- can move it back); pg_dump keeps its position.
CREATE SEQUENCE @extschema@.pglocks_token_seq AS pg_catalog.int8 MINVALUE 1 NO CYCLE;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.pglocks_token_seq', '');

CREATE FUNCTION @extschema@.pglocks_acquire_token(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_acquire_token_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_acquire_token(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_acquire_token_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_acquire_token(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_acquire_token_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'pglocks_acquire that returns a fencing token (greater than every token issued before in this database), or NULL when not acquired';
COMMENT ON FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'pglocks_acquire that returns a fencing token, or NULL when not acquired';
COMMENT ON FUNCTION @extschema@.pglocks_acquire_token(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'pglocks_acquire that returns a fencing token, or NULL when not acquired';

CREATE FUNCTION @extschema@.pglocks_token(
    key pg_catalog.text,
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_token_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_token(
    key pg_catalog.int8,
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_token_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_token(
    key1 pg_catalog.int4,
    key2 pg_catalog.int4,
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_token_pair'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_token(pg_catalog.text, pg_catalog.bool) IS
'the fencing token of this session''s newest hold of the lock that has one, or NULL';
COMMENT ON FUNCTION @extschema@.pglocks_token(pg_catalog.int8, pg_catalog.bool) IS
'the fencing token of this session''s newest hold of the lock that has one, or NULL';
COMMENT ON FUNCTION @extschema@.pglocks_token(pg_catalog.int4, pg_catalog.int4, pg_catalog.bool) IS
'the fencing token of this session''s newest hold of the lock that has one, or NULL';

-- Several locks at once -------------------------------------------------------------------

CREATE FUNCTION @extschema@.pglocks_acquire_all(
    keys pg_catalog.text[],
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_all_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_acquire_all(
    keys pg_catalog.int8[],
    shared pg_catalog.bool DEFAULT false,
    wait pg_catalog.bool DEFAULT true,
    timeout pg_catalog.interval DEFAULT NULL,
    scope pg_catalog.text DEFAULT 'session')
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pglocks_acquire_all_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_acquire_all(pg_catalog.text[], pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'take every lock of the set in ascending lock-key order, all or nothing; the timeout covers the whole set';
COMMENT ON FUNCTION @extschema@.pglocks_acquire_all(pg_catalog.int8[], pg_catalog.bool, pg_catalog.bool, pg_catalog.interval, pg_catalog.text) IS
'take every lock of the set in ascending lock-key order, all or nothing; the timeout covers the whole set';

CREATE FUNCTION @extschema@.pglocks_release_all(
    keys pg_catalog.text[],
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_release_all_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.pglocks_release_all(
    keys pg_catalog.int8[],
    shared pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_release_all_bigint'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pglocks_release_all(pg_catalog.text[], pg_catalog.bool) IS
'release one hold of each distinct lock of the set; returns how many were released';
COMMENT ON FUNCTION @extschema@.pglocks_release_all(pg_catalog.int8[], pg_catalog.bool) IS
'release one hold of each distinct lock of the set; returns how many were released';
