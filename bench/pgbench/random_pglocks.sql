\set k random(1, 1000000)
SELECT pglocks_acquire(:k::bigint);
SELECT pglocks_release(:k::bigint);
