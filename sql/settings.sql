-- pglocks' settings. The pglocks prefix is reserved: from PostgreSQL 15 on, a misspelt
-- pglocks.* name is an error. Before 15 the server only warns about unknown names when
-- the library loads, and SET creates a placeholder (expected/settings_1.out).
SHOW pglocks.allow_on_standby;
SHOW pglocks.share_names;
SET pglocks.no_such_setting = 1;
SET pglocks.allow_on_standby = maybe;
