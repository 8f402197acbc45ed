\set k random(1, 1000)
BEGIN;
SELECT pglocks_acquire(:k::bigint, scope => 'transaction');
UPDATE bench_counter SET n = n + 1 WHERE id = :k;
COMMIT;
