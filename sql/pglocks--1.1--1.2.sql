-- pglocks 1.2: fencing tokens never go back when the extension is dropped and created again.
\echo Use "ALTER EXTENSION pglocks UPDATE TO '1.2'" to load this file. \quit

-- A fresh token sequence (CREATE EXTENSION runs this script after the 1.1 one) starts at
-- half the WAL insert position, which DROP EXTENSION cannot move back and which every token
-- drawn before has stayed below (see src/pg_tokens.cpp); an updated one moves forward to it
-- if it is behind. The helper function is not kept.
CREATE FUNCTION @extschema@.pglocks_token_floor() RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pglocks_token_floor'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

SELECT pg_catalog.setval('@extschema@.pglocks_token_seq',
                         GREATEST(s.last_value, @extschema@.pglocks_token_floor()),
                         true)
FROM @extschema@.pglocks_token_seq s;

DROP FUNCTION @extschema@.pglocks_token_floor();
