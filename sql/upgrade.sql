-- The upgrade path: 1.0, then ALTER EXTENSION UPDATE to 1.1 and to 1.2, gives the same
-- objects as a fresh 1.2, holds taken before the update survive it, and tokens drawn under
-- 1.1 stay below those drawn after.
CREATE VIEW pg_temp.ext_objects AS
  SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object,
         CASE d.classid
           WHEN 'pg_proc'::regclass THEN pg_get_functiondef(d.objid) || coalesce((SELECT proacl::text FROM pg_proc WHERE oid = d.objid), '')
           WHEN 'pg_class'::regclass THEN coalesce(pg_get_viewdef(d.objid), '') || coalesce((SELECT relacl::text FROM pg_class WHERE oid = d.objid), '')
           ELSE '' END AS definition
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
  WHERE e.extname = 'pglocks' AND d.deptype = 'e'
    -- From PostgreSQL 17 on, a view's row type and its array type are members too; they
    -- follow from the view, and are left out so that every major lists the same objects.
    AND NOT EXISTS (SELECT FROM pg_type t LEFT JOIN pg_type el ON el.oid = t.typelem
                    WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                      AND (t.typrelid <> 0 OR el.typrelid <> 0));

SELECT count(*) AS objects, md5(string_agg(object || definition, E'\n' ORDER BY object)) AS fresh
FROM pg_temp.ext_objects \gset

CREATE DATABASE pglocks_upgrade;
\c pglocks_upgrade
CREATE VIEW pg_temp.ext_objects AS
  SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object,
         CASE d.classid
           WHEN 'pg_proc'::regclass THEN pg_get_functiondef(d.objid) || coalesce((SELECT proacl::text FROM pg_proc WHERE oid = d.objid), '')
           WHEN 'pg_class'::regclass THEN coalesce(pg_get_viewdef(d.objid), '') || coalesce((SELECT relacl::text FROM pg_class WHERE oid = d.objid), '')
           ELSE '' END AS definition
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
  WHERE e.extname = 'pglocks' AND d.deptype = 'e'
    -- From PostgreSQL 17 on, a view's row type and its array type are members too; they
    -- follow from the view, and are left out so that every major lists the same objects.
    AND NOT EXISTS (SELECT FROM pg_type t LEFT JOIN pg_type el ON el.oid = t.typelem
                    WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                      AND (t.typrelid <> 0 OR el.typrelid <> 0));
CREATE EXTENSION pglocks VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pglocks';
SELECT count(*) AS objects_1_0 FROM pg_temp.ext_objects;
SELECT pglocks_acquire('taken-under-1.0'), pglocks_acquire(7, scope => 'session');
ALTER EXTENSION pglocks UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'pglocks';
SELECT pglocks_acquire_token('under-1.1') AS token_1_1 \gset
ALTER EXTENSION pglocks UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pglocks';
SELECT pglocks_acquire_token('under-1.2') > :token_1_1 AS tokens_go_on;
SELECT pglocks_release('under-1.1'), pglocks_release('under-1.2');
SELECT key, holds FROM pglocks_held();
SELECT object FROM pg_temp.ext_objects ORDER BY object;
SELECT count(*) = :objects AS same_count,
       md5(string_agg(object || definition, E'\n' ORDER BY object)) = :'fresh' AS same_objects
FROM pg_temp.ext_objects;
SELECT pglocks_acquire_token('taken-under-1.0') > 0 AS tokens_work, pglocks_release_all();
\c contrib_regression
DROP DATABASE pglocks_upgrade;
