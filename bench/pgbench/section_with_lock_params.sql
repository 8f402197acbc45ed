\set k random(1, 1000)
SELECT pglocks_with_lock(:k::bigint, 'UPDATE bench_counter SET n = n + 1 WHERE id = $1', ARRAY[:k::bigint]);
